"""Values and helpers every process role shares: ids, resources, serialization, sessions."""
