"""The core worker, in every driver and worker: submission, ownership, references."""
