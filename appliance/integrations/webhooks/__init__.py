"""Webhooks: every event and alert delivered, signed, to the URLs users configure, and never lost.

``settings`` (the ``webhooks:`` section and one webhook's model), ``guard`` (which addresses a webhook may
reach), ``signing`` (the envelope and its HMAC signatures), ``delivery`` (one attempt and what its answer
means) and ``sink`` (the outbox intake and one delivery task per webhook). The outbox itself is the
repository ``appliance.store.webhooks``.
"""
