"""Secrets Manager: the one secret a stage may keep its signing keys in."""

from __future__ import annotations

from chalicelib.storage.clients import AwsClients


class SecretStore:
    def __init__(self, clients: AwsClients, secret_id: str) -> None:
        self._clients = clients
        self.secret_id = secret_id

    def read(self) -> str:
        return str(self._clients.secretsmanager.get_secret_value(SecretId=self.secret_id)["SecretString"])

    def write(self, text: str) -> None:
        self._clients.secretsmanager.put_secret_value(SecretId=self.secret_id, SecretString=text)
