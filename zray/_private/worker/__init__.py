"""What only worker processes run: the task executor, actor host, streaming."""
