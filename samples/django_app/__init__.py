"""A Django project using EverTask: sync views dispatch, a management command runs a worker.

``python -m samples.django_app runserver`` serves it (the module is the project's
``manage.py``); ``python -m samples.django_app evertask_worker`` runs a worker node. See
docs/frameworks.md.
"""
