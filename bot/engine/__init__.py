"""Driving the Rasa engine that lives in .venv-rasa: training and serving."""
