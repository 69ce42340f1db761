"""The channel-agnostic conversation machinery: durable inbox, pipeline to Rasa, outbox.

See ``docs/gateway.md`` for the exactly-once and ordering design.
"""
