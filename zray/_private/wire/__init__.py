"""The wire layer: message records, framing, transport and security, shared by every process."""
