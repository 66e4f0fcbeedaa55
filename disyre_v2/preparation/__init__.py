"""Raw scans in: registration to a template (issue 12, groundwork)."""
