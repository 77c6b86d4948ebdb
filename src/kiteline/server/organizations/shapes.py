"""The Organization JSON that REST and webhooks (the ping) show."""

from __future__ import annotations

from typing import Any

from kiteline.server.kit.ids import graphql_id
from kiteline.server.kit.timefmt import iso
from kiteline.server.kit.urls import Urls
from kiteline.server.organizations.models import Organization


def organization_json(urls: Urls, organization: Organization) -> dict[str, Any]:
    url = urls.organization(organization.slug)
    return {
        "id": str(organization.id),
        "graphql_id": graphql_id("Organization", organization.id),
        "url": url,
        "web_url": urls.web(organization.slug),
        "name": organization.name,
        "slug": organization.slug,
        "pipelines_url": f"{url}/pipelines",
        "agents_url": f"{url}/agents",
        "emojis_url": f"{url}/emojis",
        "created_at": iso(organization.created_at),
    }
