"""What a code host's webhook request says, in one shape for every host: which host sent it
(from its headers), whether its signature holds, and the push, tag or pull request it
announces (or why it announces nothing to build). Pure: no I/O."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ZERO_SHA = "0" * 40


class MalformedPayload(ValueError):
    """The body is not the JSON the event's host sends."""


@dataclass(frozen=True)
class Incoming:
    """The host, its event name and its delivery id, read from the request's headers."""

    provider: str
    event: str
    delivery_id: str | None


@dataclass(frozen=True)
class Change:
    """A push, a tag or a pull request that may start a build."""

    kind: str  # "push", "tag" or "pull_request"
    branch: str
    commit: str
    message: str
    author: dict[str, Any] = field(default_factory=dict)
    tag: str | None = None
    pull_request: dict[str, Any] | None = None
    # A pull request action that only changes labels, or marks it ready for review.
    pr_action: str | None = None


@dataclass(frozen=True)
class Ignored:
    """Acknowledged, nothing to build: a ping, a deleted branch, an event not handled."""

    reason: str
    ping: bool = False


def identify(headers: Mapping[str, str]) -> Incoming | None:
    """The sender from its headers (names lowercased); None when no known host sent it.
    Gitea and Forgejo also send GitHub's header, so they are looked for first."""
    for provider, event_header, delivery_header in (
        ("gitea", "x-forgejo-event", "x-forgejo-delivery"),
        ("gitea", "x-gitea-event", "x-gitea-delivery"),
        ("github", "x-github-event", "x-github-delivery"),
        ("gitlab", "x-gitlab-event", "x-gitlab-event-uuid"),
        ("bitbucket", "x-event-key", "x-request-uuid"),
    ):
        if event_header in headers:
            delivery = headers.get(delivery_header) or headers.get("idempotency-key")
            return Incoming(provider, headers[event_header], delivery)
    return None


def signature_holds(
    provider: str, headers: Mapping[str, str], body: bytes, secret: str
) -> tuple[bool, str]:
    """Whether the request proves it knows `secret`, as its host proves it; with the reason
    when it does not."""
    if provider == "gitlab":
        given = headers.get("x-gitlab-token")
        if given is None:
            return False, "X-Gitlab-Token is missing"
        return hmac.compare_digest(given.encode(), secret.encode()), "X-Gitlab-Token is wrong"
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if provider == "gitea" and (
        given := headers.get("x-gitea-signature") or headers.get("x-forgejo-signature")
    ):
        return hmac.compare_digest(given, digest), "X-Gitea-Signature does not match the body"
    given = headers.get("x-hub-signature-256") or (
        headers.get("x-hub-signature") if provider == "bitbucket" else None
    )
    if given is None:
        return False, "X-Hub-Signature-256 is missing"
    return (
        hmac.compare_digest(given, f"sha256={digest}"),
        "X-Hub-Signature-256 does not match the body",
    )


def parse(incoming: Incoming, body: bytes) -> Change | Ignored:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise MalformedPayload(f"The body is not JSON: {error}") from error
    if not isinstance(payload, dict):
        raise MalformedPayload("The body is not a JSON object")
    try:
        return _PARSERS[incoming.provider](incoming.event, payload)
    except (KeyError, TypeError, AttributeError, IndexError) as error:
        raise MalformedPayload(
            f"The {incoming.event!r} payload lacks what {incoming.provider} sends: {error!r}"
        ) from error


def _ref(ref: str) -> tuple[str, str]:
    """`refs/heads/x` → ("branch", "x"); `refs/tags/v1` → ("tag", "v1")."""
    for prefix, kind in (("refs/heads/", "branch"), ("refs/tags/", "tag")):
        if ref.startswith(prefix):
            return kind, ref[len(prefix) :]
    return "branch", ref


def _push(
    ref: str, commit: str, message: str, author: dict[str, Any], deleted: bool
) -> Change | Ignored:
    kind, name = _ref(ref)
    if deleted or not commit or commit == ZERO_SHA:
        return Ignored(f"The {kind} {name!r} was deleted")
    if kind == "tag":
        return Change("tag", name, commit, message, author, tag=name)
    return Change("push", name, commit, message, author)


def _github(event: str, payload: dict[str, Any]) -> Change | Ignored:
    """GitHub (and Gitea, whose payloads follow GitHub's)."""
    if event == "ping":
        return Ignored("ping", ping=True)
    if event == "push":
        head = payload.get("head_commit") or {}
        author = head.get("author") or {}
        return _push(
            payload["ref"],
            str(payload.get("after") or head.get("id") or ""),
            str(head.get("message") or ""),
            _author(author.get("name"), author.get("email"), author.get("username")),
            bool(payload.get("deleted")),
        )
    if event == "pull_request":
        action = str(payload["action"])
        pr = payload["pull_request"]
        head_repo = (pr["head"].get("repo") or {}) if isinstance(pr["head"], dict) else {}
        user = pr.get("user") or {}
        return Change(
            "pull_request",
            str(pr["head"]["ref"]),
            str(pr["head"]["sha"]),
            str(pr.get("title") or ""),
            _author(
                user.get("full_name") or user.get("login"), user.get("email"), user.get("login")
            ),
            pull_request={
                "id": str(pr.get("number") or payload.get("number")),
                "base": str(pr["base"]["ref"]),
                "repository": str(head_repo.get("clone_url") or ""),
                "labels": [str(label["name"]) for label in pr.get("labels") or []],
                "draft": bool(pr.get("draft")),
            },
            pr_action=action,
        )
    return Ignored(f"{event!r} events do not start builds")


#: Pull request actions that mean new code to build (GitHub's and Gitea's names).
PR_CODE_ACTIONS = frozenset({"opened", "reopened", "synchronize", "synchronized", "open", "reopen"})
PR_LABEL_ACTIONS = frozenset({"labeled", "unlabeled", "label_updated"})
PR_READY_ACTIONS = frozenset({"ready_for_review"})


def _gitlab(event: str, payload: dict[str, Any]) -> Change | Ignored:
    kind = payload.get("object_kind")
    if kind in ("push", "tag_push"):
        commits = payload.get("commits") or []
        after = str(payload.get("checkout_sha") or payload.get("after") or "")
        head = next((c for c in commits if c.get("id") == after), commits[-1] if commits else {})
        return _push(
            payload["ref"],
            after,
            str(head.get("message") or payload.get("message") or ""),
            _author(
                payload.get("user_name"), payload.get("user_email"), payload.get("user_username")
            ),
            payload.get("checkout_sha") is None and str(payload.get("after")) == ZERO_SHA,
        )
    if kind == "merge_request":
        attributes = payload["object_attributes"]
        user = payload.get("user") or {}
        last = attributes.get("last_commit") or {}
        action = str(attributes.get("action") or "")
        return Change(
            "pull_request",
            str(attributes["source_branch"]),
            str(last["id"]),
            str(attributes.get("title") or last.get("message") or ""),
            _author(user.get("name"), user.get("email"), user.get("username")),
            pull_request={
                "id": str(attributes["iid"]),
                "base": str(attributes["target_branch"]),
                "repository": str((attributes.get("source") or {}).get("git_http_url") or ""),
                "labels": [str(label["title"]) for label in payload.get("labels") or []],
                "draft": bool(attributes.get("draft") or attributes.get("work_in_progress")),
            },
            pr_action={"open": "opened", "reopen": "reopened", "update": "synchronize"}.get(
                action, action
            ),
        )
    return Ignored(f"{event!r} events do not start builds")


def _bitbucket(event: str, payload: dict[str, Any]) -> Change | Ignored:
    if event == "repo:push":
        changes = payload["push"]["changes"]
        if not changes:
            return Ignored("The push changed no branch")
        change = changes[-1]
        new = change.get("new")
        if new is None:
            old = change.get("old") or {}
            return Ignored(f"The {old.get('type', 'branch')} {old.get('name')!r} was deleted")
        target = new["target"]
        author = target.get("author") or {}
        user = author.get("user") or {}
        raw = str(author.get("raw") or "")
        name, _, email = raw.partition(" <")
        prefix = "refs/tags/" if new["type"] == "tag" else "refs/heads/"
        return _push(
            prefix + str(new["name"]),
            str(target["hash"]),
            str(target.get("message") or ""),
            _author(user.get("display_name") or name or None, email.rstrip(">") or None, None),
            False,
        )
    if event in ("pullrequest:created", "pullrequest:updated"):
        pr = payload["pullrequest"]
        user = pr.get("author") or {}
        source = pr["source"]
        return Change(
            "pull_request",
            str(source["branch"]["name"]),
            str(source["commit"]["hash"]),
            str(pr.get("title") or ""),
            _author(user.get("display_name"), None, user.get("nickname")),
            pull_request={
                "id": str(pr["id"]),
                "base": str(pr["destination"]["branch"]["name"]),
                "repository": str((source.get("repository") or {}).get("full_name") or ""),
                "labels": [],
                "draft": bool(pr.get("draft")),
            },
            pr_action="opened" if event == "pullrequest:created" else "synchronize",
        )
    return Ignored(f"{event!r} events do not start builds")


def _gitea(event: str, payload: dict[str, Any]) -> Change | Ignored:
    if event in ("create", "delete", "release", "issues", "issue_comment"):
        return Ignored(f"{event!r} events do not start builds")
    return _github(event, payload)


def _author(name: Any, email: Any, username: Any) -> dict[str, Any]:
    author = {"name": name, "email": email, "username": username}
    return {key: str(value) for key, value in author.items() if value}


_PARSERS = {"github": _github, "gitea": _gitea, "gitlab": _gitlab, "bitbucket": _bitbucket}
