"""Plate I/O and colour: decoding and encoding images with OpenImageIO, and the face crop's colour conversions."""
