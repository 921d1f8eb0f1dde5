"""Read-side questions over the store protocols. No backend-specific code here."""
