"""The international registry with its additional registry services (ARS)."""
