# facebridge: runs in every Nuke session, nuke -t included, so it builds no UI.
# This folder is on the plugin path (NUKE_PATH, or nuke.pluginAddPath from `facebridge install nuke`),
# which also puts it on sys.path; importing the package checks that the shared code is found.
import facebridge_nuke  # noqa: F401
