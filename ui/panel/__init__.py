"""The PySide6 artist panel: A/B parameter sets over an analysed shot, previews from the server's cache."""
