"""The demo: the demo accounts, their schema, audiences and experiences (``seed``,
``audiences``), and a week of generated traffic (``traffic``, sent by ``manage.py
seed_demo_events``). The top layer: it may import every app, and no app imports it.
"""
