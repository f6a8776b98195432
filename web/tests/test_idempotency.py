"""`Idempotency-Key` through the real binary: a retry sent while the first submit is still uploading waits for it and
gets the same answer, and only one job exists."""

from __future__ import annotations

import json
import socket
import uuid

import urllib3


def multipart(fields: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = b""
    for name, (filename, data) in fields.items():
        body += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                f"Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + data
            + b"\r\n"
        )
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def submit(server, files: dict[str, tuple[str, bytes]], key: str):
    """POSTs `files` in a fresh multipart encoding with `Idempotency-Key: key`."""
    body, content_type = multipart(files)
    return urllib3.request(
        "POST",
        server.url + "api/generate",
        body=body,
        headers={"Content-Type": content_type, "Idempotency-Key": key},
        timeout=60,
        retries=False,
    )


def test_a_retry_during_the_first_upload_gets_the_same_answer_and_no_second_job(own_server, media):
    files = {
        "image": ("astronaut.png", (media / "astronaut.png").read_bytes()),
        "audio": ("speech-en.wav", (media / "speech-en.wav").read_bytes()),
    }
    key = str(uuid.uuid4())
    before = own_server.get_json("api/requests")["total"]
    # The first submit sends its head and half its body, then stalls
    body, content_type = multipart(files)
    first = socket.create_connection(("127.0.0.1", own_server.port), timeout=60)
    head = (
        f"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1:{own_server.port}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nIdempotency-Key: {key}\r\nConnection: close\r\n\r\n"
    )
    first.sendall(head.encode() + body[: len(body) // 2])
    # Meanwhile the retry (a new multipart encoding of the same content) is answered
    retry = submit(own_server, files, key)
    assert retry.status == 200, retry.data
    # Then the first finishes its upload and gets the very same answer
    first.sendall(body[len(body) // 2 :])
    answer = b""
    while chunk := first.recv(65536):
        answer += chunk
    first.close()
    head_text, _, first_body = answer.partition(b"\r\n\r\n")
    assert head_text.startswith(b"HTTP/1.1 200"), head_text
    assert json.loads(first_body) == json.loads(retry.data)
    assert b"idempotent-replayed: true" in head_text.lower()
    assert own_server.get_json("api/requests")["total"] == before + 1
    # And the same key with other content is refused
    conflict = submit(own_server, {**files, "audio": ("other.wav", files["audio"][1] + b"\0\0")}, key)
    assert conflict.status == 422 and json.loads(conflict.data)["error"]["code"] == "idempotency_key_reused"
