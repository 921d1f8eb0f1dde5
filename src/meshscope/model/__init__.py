"""Plain data shared by every part of meshscope. Imports nothing else from the package."""
