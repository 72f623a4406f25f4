"""Asynchronous (Event) invocations: a durable queue, its dispatcher, retries and destinations."""
