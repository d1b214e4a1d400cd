# facebridge: GUI sessions only. Nodes > facebridge > FaceBridge creates the node.
import nuke

nuke.menu("Nodes").addMenu("facebridge").addCommand(
    "FaceBridge", "import facebridge_nuke.node; facebridge_nuke.node.create_node()")
