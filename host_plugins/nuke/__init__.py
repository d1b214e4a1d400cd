"""The Nuke plugin folder (put it on ``NUKE_PATH``, or run ``facebridge install nuke``).

Nuke itself never imports this file: it runs ``init.py`` and ``menu.py`` from the folder and imports
the ``facebridge_nuke`` package from it. The file only lets Python packaging ship the folder.
"""
