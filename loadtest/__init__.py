"""Load tests: Locust users, the stepped-load runner, the integrity check and the report."""
