"""One HTTP request for a provider that speaks HTTP itself (web, Datadog).

A timeout or a connection that fails is a `ProviderError` naming who was asked; what the answer means
is the provider's to judge.
"""

from __future__ import annotations

from typing import Any

import requests

from modelrollout.providers import ProviderError


def send(who: str, method: str, url: str, timeout: float, **options: Any) -> requests.Response:
    """`method url` with `options` (requests' own); `who` names the server in errors, never a credential."""
    try:
        return requests.request(method, url, timeout=timeout, **options)
    except requests.Timeout:
        raise ProviderError(f"{who} did not answer within {timeout:g}s") from None
    except requests.RequestException as error:
        raise ProviderError(f"{who} is unreachable: {type(error).__name__}") from None
