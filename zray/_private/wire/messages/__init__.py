"""The wire protocol's records, one module per area; `zray._private.wire.protocol` re-exports
them all with the codec."""
