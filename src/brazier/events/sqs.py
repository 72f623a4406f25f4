"""Sending destination records to an SQS-compatible server (``--sqs-endpoint``/``--aws-endpoint``).

botocore (already brazier's dependency for the API model) signs and speaks SQS's protocol; its
client is synchronous, so each send runs on a worker thread. Queue URLs are looked up once per
queue ARN (``GetQueueUrl`` with the owner account), so any SQS-compatible server works whatever
its URL scheme.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Mapping
from typing import Any

import botocore.config
import botocore.session


class SqsSender:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._session = botocore.session.get_session()
        self._clients: dict[str, Any] = {}
        self._urls: dict[str, str] = {}
        self._lock = threading.Lock()

    def _client(self, region: str) -> Any:
        with self._lock:
            client = self._clients.get(region)
            if client is None:
                # The operator's credentials when the environment has them; SQS-compatible test
                # servers accept any.
                client = self._session.create_client(
                    "sqs",
                    region_name=region,
                    endpoint_url=self.endpoint,
                    aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "brazier"),
                    aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "brazier"),
                    config=botocore.config.Config(
                        retries={"max_attempts": 1}, connect_timeout=5, read_timeout=10
                    ),
                )
                self._clients[region] = client
            return client

    def _send(self, queue_arn: str, body: str, attributes: Mapping[str, Any] | None) -> None:
        parts = queue_arn.split(":")
        if len(parts) != 6 or parts[2] != "sqs":
            raise ValueError(f"not an SQS queue ARN: {queue_arn}")
        region, account, name = parts[3], parts[4], parts[5]
        client = self._client(region)
        url = self._urls.get(queue_arn)
        if url is None:
            url = client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
            self._urls[queue_arn] = url
        kw: dict[str, Any] = {"QueueUrl": url, "MessageBody": body}
        if attributes:
            kw["MessageAttributes"] = dict(attributes)
        client.send_message(**kw)

    async def send(
        self, queue_arn: str, body: str, attributes: Mapping[str, Any] | None = None
    ) -> None:
        """Send one message; raises when the server or the queue cannot be reached."""
        await asyncio.to_thread(self._send, queue_arn, body, attributes)
