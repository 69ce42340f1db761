"""The domain core: plain Python over SQLAlchemy sessions and a clock.

It knows nothing about HTTP, Rasa, channels or templates.
"""
