"""The DaVinci Resolve plugin folder (``facebridge install resolve`` puts a launcher in Resolve's
per-user ``Fusion/Scripts/Utility`` folder that imports ``facebridge_resolve`` from here).

Resolve never imports this file; it only lets Python packaging ship the folder.
"""
