"""The international registry's Party-section portal: the opening procedure, from the
electronic form to verified accounts, for focal points, section administrators and the
secretariat (docs/PORTAL.md)."""
