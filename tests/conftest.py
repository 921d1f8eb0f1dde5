"""Suite-wide test settings."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

# Hypothesis's timing checks (slow data generation, per-example deadlines) measure wall-clock
# time, which on a busy 2-core machine says more about the machine than about the code.
settings.register_profile("meshscope", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("meshscope")
