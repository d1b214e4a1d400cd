r"""A fake of Foundry Nuke's ``nuke`` module, for testing the facebridge Nuke plugin without Nuke.

It implements the documented calls the plugin uses (``host_plugins/nuke/README.md`` lists each with
its page in Foundry's Python developer guide) and nothing else, so a call outside that list fails
here as an AttributeError. Pixels are real: ``Read`` nodes load EXR files with OpenImageIO, ``Switch``,
``Input``, ``Output`` and ``Group`` pass images along, and ``nuke.execute`` runs ``Write`` nodes over a
frame range, writing real EXR files with the Write's channels, datatype and compression.

Scripts are saved as JSON (not Nuke's .nk syntax) holding each node's class, name, knobs (user knobs
with their type) and input connections; ``scriptOpen`` rebuilds them.

Where real Nuke is lenient or undefined, the fake is strict (each point is documented behaviour, see
host_plugins/nuke/README.md, "What the test fake models"):

- File and eval-string knobs hold TCL: Read/Write evaluate their ``file`` knob (``[cmd]``, ``$var``,
  backslash escapes, so ``C:\shots`` reads as ``C:shots``), ``EvalString_Knob.evaluate()`` does the same;
  an unknown command or variable is an error.
- A Read decodes each file once and keeps it until its ``reload`` button runs (setting ``file`` to the same
  path shows the old pixels); its ``format`` (the output's display window) comes from the file only through
  ``File_Knob.fromUserText`` or ``reload``; a missing frame follows ``on_error`` (default: an error).
- ``nuke.toNode`` searches from the current group context (``root.`` names are absolute); a Python button
  on a Group runs inside that group's context.
- A name already used in the group is made unique (``Write1`` -> ``Write2``), never shared.
- Nodes and knobs belong to the main thread: touching them, ``nuke.execute`` or ``nuke.message`` from
  another thread raises. ``executeInMainThread[WithResult]`` queue calls that the test's main loop
  (``_fake.run_main_loop``) runs; ``executeInMainThreadWithResult`` prints an exception and returns None,
  as Nuke's own implementation does. ``ProgressTask`` may be used from any thread (Foundry's example).
- Profiles: ``FAKE_NUKE_VERSION_MAJOR`` (environment, for ``nuke -t`` runs) or ``_fake.reset(version=...)``:
  13 (Python 3.7, PySide2) or 16 (Python 3.11, PySide6). The calls the plugin uses are the same in both.

Test hooks live on ``_fake`` (never used by the plugin): ``_fake.gui``, ``_fake.reset()``,
``_fake.progress`` (every ProgressTask update), ``_fake.cancel`` (a callable deciding when a
ProgressTask reports a cancel), ``_fake.messages``, ``_fake.menus``, ``_fake.startup()``,
``_fake.run_main_loop()``, ``_fake.undo`` (closed undo steps), ``_fake.decoded`` (files a Read decoded).
"""

import json
import os
import queue
import re
import sys
import threading
import traceback
import typing  # (used qualified: the fake's public names are checked against Nuke's documented API)
from collections import OrderedDict

NUKE_VERSION_MAJOR = int(os.environ.get("FAKE_NUKE_VERSION_MAJOR", "16"))


class _Env(object):
    """``nuke.env``: read with ``nuke.env["gui"]`` (the documented form; nothing else is offered)."""

    def __init__(self, values):
        self._values = values

    def __getitem__(self, key):
        return self._values[key]


env = _Env({"gui": False, "NukeVersionMajor": NUKE_VERSION_MAJOR})


# --- knobs ----------------------------------------------------------------------------------------


class Knob(object):
    _default: typing.Any = ""  # each knob class holds its own kind of value

    def __init__(self, name, label=None, *args):
        self._name = name
        self._label = label if label is not None else name
        self._value: typing.Any = self._default
        self._tooltip = ""
        self._node: typing.Optional[Node] = None  # set when the knob is added to a node
        self._user = False

    def name(self):
        return self._name

    def label(self):
        return self._label

    def node(self):
        return self._node

    def value(self):
        _main_thread_only("Knob.value")
        return self._value

    def getValue(self):
        return self.value()

    def setValue(self, value):
        _main_thread_only("Knob.setValue")
        old = self._value
        self._value = self._convert(value)
        _fake.record_change(self, old)
        return True

    def _convert(self, value):
        return value

    def setTooltip(self, text):
        self._tooltip = text

    def tooltip(self):
        return self._tooltip

    def Class(self):
        return type(self).__name__

    # serialisation (fake-only)
    def _save(self):
        return {"class": self.Class(), "name": self._name, "label": self._label, "value": self._value,
                "tooltip": self._tooltip}

    @classmethod
    def _load(cls, data):
        knob = cls(data["name"], data["label"])
        knob._value = data["value"]
        knob._tooltip = data.get("tooltip", "")
        return knob


class String_Knob(Knob):
    _default = ""

    def __init__(self, name, label=None, text=""):
        Knob.__init__(self, name, label)
        self._value = str(text)

    def _convert(self, value):
        return str(value)


class EvalString_Knob(String_Knob):
    """A string knob whose value is TCL: ``evaluate()`` substitutes ``[commands]``, ``$variables`` and
    backslash escapes."""

    def evaluate(self):
        _main_thread_only("EvalString_Knob.evaluate")
        return _tcl_subst(self._value, self._node)


class File_Knob(EvalString_Knob):
    def fromUserText(self, s):
        """Assign the text, parse a trailing frame range (``path 1001-1003``) into the Read's first/last and
        open the file to set the node's format."""
        _main_thread_only("File_Knob.fromUserText")
        text = str(s)
        match = re.match(r"^(.*\S)\s+(-?\d+)-(-?\d+)$", text)
        first = last = None
        if match:
            text, first, last = match.group(1), int(match.group(2)), int(match.group(3))
        self.setValue(text)
        node = self._node
        if node is not None and match and node.knob("first") is not None:
            node["first"].setValue(first)
            node["last"].setValue(last)
        if node is not None and node.knob("format") is not None:
            node._read_format()


class Multiline_Eval_String_Knob(EvalString_Knob):
    pass


class Format_Knob(Knob):
    """A node's format; the fake holds ``(x, y, width, height)`` of the display window."""

    _default = (0, 0, 1920, 1080)


class Script_Knob(Knob):
    """A built-in (TCL) button such as the Read's ``reload``; ``execute()`` presses it."""

    def execute(self):
        _main_thread_only("Script_Knob.execute")
        node = self._node
        if node is not None and node.Class() == "Read" and self._name == "reload":
            node._cache.clear()
            node._read_format()


class Text_Knob(String_Knob):
    pass


class Tab_Knob(Knob):
    def __init__(self, name, label=None, value=0):
        Knob.__init__(self, name, label)
        self._value = 0


class Int_Knob(Knob):
    _default = 0

    def _convert(self, value):
        if isinstance(value, bool) or int(value) != value:
            raise TypeError("Int_Knob %s: not an int: %r" % (self._name, value))
        return int(value)


class Double_Knob(Knob):
    _default = 0.0

    def __init__(self, name, label=None):
        Knob.__init__(self, name, label)
        self._range = (0.0, 1.0)

    def _convert(self, value):
        return float(value)

    def setRange(self, minimum, maximum):
        self._range = (minimum, maximum)

    def _save(self):
        data = Knob._save(self)
        data["range"] = list(self._range)
        return data

    @classmethod
    def _load(cls, data):
        knob = super(Double_Knob, cls)._load(data)
        knob._range = tuple(data.get("range", (0.0, 1.0)))
        return knob


class Boolean_Knob(Knob):
    _default = False

    def _convert(self, value):
        return bool(value)


class Enumeration_Knob(Knob):
    def __init__(self, name, label, values):
        Knob.__init__(self, name, label)
        self._values = [str(v) for v in values]
        self._value = self._values[0] if self._values else ""

    def _convert(self, value):
        if isinstance(value, int) and not isinstance(value, bool):
            return self._values[value]
        if str(value) not in self._values:
            raise ValueError("Enumeration_Knob %s: %r is not one of %r" % (self._name, value, self._values))
        return str(value)

    def values(self):
        return list(self._values)

    def _save(self):
        data = Knob._save(self)
        data["values"] = list(self._values)
        return data

    @classmethod
    def _load(cls, data):
        knob = cls(data["name"], data["label"], data["values"])
        knob._value = data["value"]
        knob._tooltip = data.get("tooltip", "")
        return knob


class PyScript_Knob(Knob):
    def __init__(self, name, label=None, command=""):
        Knob.__init__(self, name, label)
        self._value = command

    def command(self):
        return self._value

    def execute(self):
        """Run the button's Python command with ``nuke.thisNode()`` set to the knob's node."""
        assert self._node is not None, "a button runs on the node it was added to"
        _main_thread_only("PyScript_Knob.execute")
        _fake.this_nodes.append(self._node)
        group = self._node if isinstance(self._node, Group) else None
        if group is not None:   # a button on a Group runs in the group's context (toNode finds its internal nodes)
            _fake.groups.append(group)
        try:
            exec(compile(self._value, "<%s.%s>" % (self._node.name(), self._name), "exec"),
                 {"nuke": sys.modules[__name__], "__name__": "__main__"})
        finally:
            if group is not None and _fake.groups[-1] is group:
                _fake.groups.pop()
            _fake.this_nodes.pop()


_KNOB_CLASSES = {cls.__name__: cls for cls in (String_Knob, EvalString_Knob, File_Knob, Multiline_Eval_String_Knob,
                                              Text_Knob, Tab_Knob, Int_Knob, Double_Knob, Boolean_Knob, Enumeration_Knob,
                                              PyScript_Knob, Format_Knob, Script_Knob)}


# --- nodes ----------------------------------------------------------------------------------------

# Built-in knobs per class: (knob class, name, default, extra args)
_BUILTIN: typing.Dict[str, typing.List[typing.Tuple[typing.Any, ...]]] = {
    "Read": [(File_Knob, "file", ""), (Format_Knob, "format", None), (Int_Knob, "first", 1), (Int_Knob, "last", 1),
             (Boolean_Knob, "raw", False), (Enumeration_Knob, "before", "hold", ["hold", "black"]),
             (Enumeration_Knob, "after", "hold", ["hold", "black"]),
             (Enumeration_Knob, "on_error", "error", ["error", "black", "checkerboard", "nearest frame"]),
             (Script_Knob, "reload", "")],
    "Write": [(File_Knob, "file", ""), (String_Knob, "file_type", ""), (String_Knob, "channels", "rgb"),
              (Enumeration_Knob, "datatype", "16 bit half", ["16 bit half", "32 bit float"]),
              (Enumeration_Knob, "compression", "Zip (1 scanline)",
               ["none", "Zip (1 scanline)", "Zip (16 scanlines)", "PIZ Wavelet (32 scanlines)", "RLE"]),
              (Boolean_Knob, "raw", False), (Boolean_Knob, "create_directories", False)],
    "Switch": [(Int_Knob, "which", 0)],
    "Input": [(Int_Knob, "number", 0)],
    "Output": [],
    "Group": [],
    "Dot": [],
    "Root": [(Int_Knob, "first_frame", 1), (Int_Knob, "last_frame", 100), (Boolean_Knob, "proxy", False),
             (Format_Knob, "format", (0, 0, 1920, 1080)),
             (Enumeration_Knob, "colorManagement", "Nuke", ["Nuke", "OCIO"]),
             (String_Knob, "OCIO_config", "nuke-default"), (File_Knob, "customOCIOConfigPath", ""),
             (String_Knob, "workingSpaceLUT", "linear")],
}


class Node(object):
    def __init__(self, cls, name=None):
        self._class = cls
        self._knobs: typing.Dict[str, typing.Any] = OrderedDict()
        self._inputs: typing.List[typing.Any] = []
        self._parent = None
        self._cache: typing.Dict[str, typing.Any] = {}   # a Read's decoded files, kept until reload
        for spec in _BUILTIN.get(cls, []):
            knob_cls, knob_name, default = spec[:3]
            knob = knob_cls(knob_name, knob_name, spec[3]) if knob_cls is Enumeration_Knob else knob_cls(knob_name)
            if knob_cls is Format_Knob and default is None:   # a new node takes the script's format
                default = _fake.root._knobs["format"]._value
            knob._value = default
            self._attach(knob)
        name_knob = String_Knob("name", "name")
        self._attach(name_knob)
        name_knob._value = name or ""

    def _attach(self, knob):
        knob._node = self
        self._knobs[knob.name()] = knob

    def Class(self):
        return self._class

    def name(self):
        return self._knobs["name"].value()

    def setName(self, name, uncollide=True, updateExpressions=False):
        _main_thread_only("Node.setName")
        group = self._parent
        if group is not None:
            taken = group.node(name)
            if taken is not None and taken is not self:
                if not uncollide:
                    raise ValueError("%s: name already in use" % name)
                name = _unique(group, name, self)
        self._knobs["name"]._value = name

    def _read_format(self):
        """Set a Read's format from its file's header (first frame), as Nuke does when it opens the file."""
        import OpenImageIO as oiio

        frame = int(self._knobs["first"]._value)
        path = _frame_file(_tcl_subst(self._knobs["file"]._value, self), frame)
        inp = oiio.ImageInput.open(path)
        if inp is None:
            oiio.geterror()
            return   # no file yet: the format stays as it was
        try:
            spec = inp.spec()
            self._knobs["format"]._value = (spec.full_x, spec.full_y, spec.full_width, spec.full_height)
        finally:
            inp.close()

    def fullName(self):
        names = []
        node: typing.Optional[Node] = self
        while node is not None and node._class != "Root":
            names.append(node.name())
            node = node._parent
        return ".".join(reversed(names))

    def knob(self, name):
        _main_thread_only("Node.knob")
        return self._knobs.get(name)

    def knobs(self):
        return dict(self._knobs)

    def __getitem__(self, name):
        _main_thread_only("Node.__getitem__")
        knob = self._knobs.get(name)
        if knob is None:
            raise NameError("knob %s does not exist" % name)
        return knob

    def addKnob(self, knob):
        knob._user = True
        self._attach(knob)

    def setInput(self, i, node):
        while len(self._inputs) <= i:
            self._inputs.append(None)
        self._inputs[i] = node
        return True

    def input(self, i):
        return self._inputs[i] if i < len(self._inputs) else None

    def inputs(self):
        return len(self._inputs)


class Group(Node):
    def __init__(self, cls="Group", name=None):
        Node.__init__(self, cls, name)
        self._children = []

    def begin(self):
        _fake.groups.append(self)
        return self

    def end(self):
        if len(_fake.groups) > 1 and _fake.groups[-1] is self:
            _fake.groups.pop()

    def __enter__(self):
        return self.begin()

    def __exit__(self, *exc):
        self.end()

    def node(self, name):
        for child in self._children:
            if child.name() == name:
                return child
        return None

    def nodes(self):
        return list(self._children)

    def output(self):
        for child in self._children:
            if child.Class() == "Output":
                return child
        return None


def _unique(group, base, node=None):
    """``base`` if no other node of ``group`` has it, else ``base`` with its trailing number raised
    (``Write1`` -> ``Write2``, ``Read`` -> ``Read1``)."""
    def taken(name):
        other = group.node(name)
        return other is not None and other is not node

    if base and not taken(base):
        return base
    match = re.match(r"^(.*?)(\d*)$", base)
    stem, digits = (match.group(1), match.group(2)) if match else (base, "")
    index = int(digits) + 1 if digits else 1
    while taken("%s%d" % (stem, index)):
        index += 1
    return "%s%d" % (stem, index)


def _make(cls, knobs=None, group=None):
    _main_thread_only("creating a %s node" % cls)
    group = group or _fake.groups[-1]
    node = Group(cls) if cls == "Group" else Node(cls)
    node._parent = group
    knobs = dict(knobs or {})
    wanted = str(knobs.pop("name", ""))
    node._knobs["name"]._value = _unique(group, wanted) if wanted else _unique(group, cls + "1")
    for key, value in knobs.items():
        node[key].setValue(value)
    group._children.append(node)
    return node


class _NodeConstructors(object):
    """``nuke.nodes.Read(file=..., first=...)``: a node of that class in the current group."""

    def __getattr__(self, cls):
        if cls not in _BUILTIN:
            raise AttributeError("fake nuke.nodes has no %s" % cls)
        return lambda **knobs: _make(cls, knobs)


nodes = _NodeConstructors()


def createNode(node, args="", inpanel=True):
    if args:
        raise NotImplementedError("fake createNode: knob arguments are not supported")
    return _make(node)


def toNode(name):
    """The node called ``name`` in the current group context; ``root.A.B`` is absolute, ``A.B`` relative."""
    _main_thread_only("nuke.toNode")
    current = _fake.groups[-1]
    parts = name.split(".")
    if parts[0] == "root":
        current, parts = _fake.root, parts[1:]
    for part in parts:
        if not isinstance(current, Group):
            return None
        current = current.node(part)
        if current is None:
            return None
    return current


def delete(node):
    _main_thread_only("nuke.delete")
    node._parent._children.remove(node)


def thisNode():
    return _fake.this_nodes[-1] if _fake.this_nodes else _fake.root


def root():
    return _fake.root


def scriptName():
    if not _fake.script:
        raise RuntimeError("no script name: the script has not been saved")
    return _fake.script


def message(prompt):
    _main_thread_only("nuke.message")
    _fake.messages.append(str(prompt))


# --- threads and undo ----------------------------------------------------------------------------


def _main_thread_only(what):
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("fake nuke: %s outside Nuke's main thread (use nuke.executeInMainThread)" % what)


def executeInMainThread(call, args=(), kwargs={}):
    """Queue ``call`` for the main thread and return at once."""
    if not isinstance(args, tuple):
        args = (args,)
    _fake.main_queue.put((call, args, dict(kwargs), None))


def executeInMainThreadWithResult(call, args=(), kwargs={}):
    """Run ``call`` in the main thread and wait for its result (an exception is printed, None returned)."""
    if threading.current_thread() is threading.main_thread():
        raise RuntimeError("fake nuke: executeInMainThreadWithResult from the main thread would deadlock")
    if not isinstance(args, tuple):
        args = (args,)
    done = threading.Event()
    box: typing.List[typing.Any] = [None]
    _fake.main_queue.put((call, args, dict(kwargs), (done, box)))
    done.wait()
    return box[0]


class Undo(object):
    """``nuke.Undo()``: ``begin(name)`` ... ``end()`` groups knob changes into one undo step."""

    def begin(self, name=None):
        _main_thread_only("Undo.begin")
        if _fake.undo_open is not None:
            raise RuntimeError("fake nuke: an undo group is already open")
        _fake.undo_open = (str(name or ""), [])

    def end(self):
        if _fake.undo_open is not None and _fake.undo_open[1]:
            _fake.undo.append(_fake.undo_open)
        _fake.undo_open = None

    def cancel(self):
        _fake.undo_open = None


# --- menus, plugin path --------------------------------------------------------------------------


class Menu(object):
    def __init__(self, name):
        self._name = name
        self._items = OrderedDict()

    def name(self):
        return self._name

    def addMenu(self, name, icon=None):
        item = self._items.get(name)
        if not isinstance(item, Menu):
            item = self._items[name] = Menu(name)
        return item

    def addCommand(self, name, command=None, shortcut="", icon="", tooltip=""):
        item = self._items[name] = MenuItem(name, command)
        return item

    def findItem(self, name):
        current: typing.Union[Menu, MenuItem, None] = self
        for part in name.split("/"):
            current = current._items.get(part) if isinstance(current, Menu) else None
            if current is None:
                return None
        return current


class MenuItem(object):
    def __init__(self, name, command):
        self._name = name
        self._command = command

    def name(self):
        return self._name

    def script(self):
        return self._command

    def invoke(self):
        if callable(self._command):
            self._command()
        else:
            exec(self._command, {"nuke": sys.modules[__name__], "__name__": "__main__"})


def menu(name):
    if not env["gui"]:
        raise RuntimeError("fake nuke: nuke.menu(%r) called without a GUI (init.py must not build UI)" % name)
    return _fake.menus.setdefault(name, Menu(name))


def pluginAddPath(args, addToSysPath=True):
    paths = [args] if isinstance(args, str) else list(args)
    for path in paths:
        path = os.path.abspath(os.path.expanduser(path))
        if path in _fake.plugin_path:
            _fake.plugin_path.remove(path)
        _fake.plugin_path.insert(0, path)
        if addToSysPath and path not in sys.path:
            sys.path.insert(0, path)
        if _fake.in_init and os.path.isfile(os.path.join(path, "init.py")):
            _run_file(os.path.join(path, "init.py"))


def _run_file(path):
    with open(path) as handle:
        code = compile(handle.read(), path, "exec")
    exec(code, {"nuke": sys.modules[__name__], "__name__": "__main__", "__file__": path})


# --- progress -------------------------------------------------------------------------------------


class ProgressTask(object):
    def __init__(self, name):
        self._name = name
        self._updates = 0
        _fake.progress.append((name, None, "start"))

    def setMessage(self, s):
        _fake.progress.append((self._name, None, str(s)))

    def setProgress(self, i):
        self._updates += 1
        _fake.progress.append((self._name, int(i), None))

    def isCancelled(self):
        return bool(_fake.cancel is not None and _fake.cancel(self._name, self._updates))


# --- images and execute --------------------------------------------------------------------------

_TOKEN = re.compile(r"(#+)|%0?(\d*)d")


def _frame_file(pattern, frame):
    match = _TOKEN.search(pattern)
    if not match:
        return pattern
    width = len(match.group(1)) if match.group(1) else int(match.group(2) or 1)
    return pattern[:match.start()] + "%0*d" % (width, frame) + pattern[match.end():]


class _Image(object):
    def __init__(self, pixels, names, attributes):
        self.pixels = pixels
        self.names = tuple(names)
        self.attributes = attributes


def _image(node, frame):
    if node is None:
        raise RuntimeError("fake nuke: a node has no input connected")
    cls = node.Class()
    if cls == "Read":
        return _read(node, frame)
    if cls == "Input":
        group = node._parent
        return _image(group.input(int(node["number"].value())), frame)
    if cls == "Switch":
        which = min(max(int(node["which"].value()), 0), max(node.inputs() - 1, 0))
        return _image(node.input(which), frame)
    if cls in ("Output", "Write", "Dot"):
        return _image(node.input(0), frame)
    if cls == "Group":
        return _image(node.output(), frame)
    raise RuntimeError("fake nuke: cannot evaluate %s nodes" % cls)


def _read(node, frame):
    import numpy as np

    first, last = int(node["first"].value()), int(node["last"].value())
    frame = min(max(frame, first), last)   # before/after: hold
    path = _frame_file(_tcl_subst(node["file"].value(), node), frame)
    image = node._cache.get(path)
    if image is None:
        image = _decode(node, path)
        if image is None:   # missing or unreadable frame: the Read's on_error decides
            mode = node["on_error"].value()
            if mode == "error":
                raise RuntimeError("%s: Read error: cannot open %s" % (node.name(), path))
            if mode == "nearest frame":
                raise NotImplementedError("fake nuke: on_error 'nearest frame'")
            x, y, w, h = node["format"].value()
            pixels = np.zeros((h, w, 4), np.float32)
            if mode == "checkerboard":
                yy, xx = np.mgrid[0:h, 0:w]
                pixels[:, :, :3] = (((yy // 32) + (xx // 32)) % 2 * 0.5 + 0.25)[:, :, None]
                pixels[:, :, 3] = 1.0
            return _Image(pixels, ("R", "G", "B", "A"), {"x": x, "y": y, "full": (x, y, w, h), "missing": mode})
        node._cache[path] = image
    x, y, w, h = node["format"].value()   # the output's display window is the Read's format knob
    attributes = dict(image.attributes, full=(x, y, w, h))
    return _Image(image.pixels, image.names, attributes)


def _decode(node, path):
    import OpenImageIO as oiio

    inp = oiio.ImageInput.open(path)
    if inp is None:
        oiio.geterror()
        return None
    _fake.decoded.append(path)
    try:
        spec = inp.spec()
        pixels = inp.read_image(format=oiio.FLOAT)
    finally:
        inp.close()
    if pixels is None:
        return None
    pixels = pixels.reshape(spec.height, spec.width, spec.nchannels)
    attributes = {"x": spec.x, "y": spec.y, "full": (spec.full_x, spec.full_y, spec.full_width, spec.full_height)}
    return _Image(pixels, spec.channelnames, attributes)


_CHANNEL_SETS = {"rgb": ("R", "G", "B"), "rgba": ("R", "G", "B", "A"), "alpha": ("A",)}
_COMPRESSION = {"none": "none", "Zip (1 scanline)": "zips", "Zip (16 scanlines)": "zip",
                "PIZ Wavelet (32 scanlines)": "piz", "RLE": "rle"}


def _write(node, frame):
    import numpy as np
    import OpenImageIO as oiio

    if str(node["file_type"].value()) not in ("exr", ""):
        raise RuntimeError("fake nuke: Write supports exr only")
    path = _frame_file(_tcl_subst(node["file"].value(), node), frame)
    if not path.lower().endswith(".exr") and node["file_type"].value() != "exr":
        raise RuntimeError("fake nuke: Write supports exr only")
    image = _image(node.input(0), frame)
    channels = str(node["channels"].value())
    if channels == "all":
        keep = list(range(len(image.names)))
    else:
        wanted = _CHANNEL_SETS[channels]
        keep = [image.names.index(c) for c in wanted if c in image.names]
    pixels = np.ascontiguousarray(image.pixels[:, :, keep])
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        if not node["create_directories"].value():
            raise RuntimeError("%s: cannot write %s: no such directory" % (node.name(), path))
        os.makedirs(folder)
    fmt = oiio.FLOAT if node["datatype"].value() == "32 bit float" else oiio.HALF
    h, w, c = pixels.shape
    spec = oiio.ImageSpec(w, h, c, fmt)
    spec.channelnames = tuple(image.names[i] for i in keep)
    spec.x, spec.y = image.attributes["x"], image.attributes["y"]
    spec.full_x, spec.full_y, spec.full_width, spec.full_height = image.attributes["full"]
    spec.attribute("compression", _COMPRESSION[node["compression"].value()])
    out = oiio.ImageOutput.create(path)
    if out is None or not out.open(path, spec):
        raise RuntimeError("%s: cannot write %s: %s" % (node.name(), path, oiio.geterror()))
    try:
        if not out.write_image(pixels):
            raise RuntimeError("%s: cannot write %s: %s" % (node.name(), path, out.geterror()))
    finally:
        out.close()
    _fake.written.append(path)


def execute(nameOrNode, start=None, end=None, incr=1, views=None, continueOnError=False):
    _main_thread_only("nuke.execute")
    node = toNode(nameOrNode) if isinstance(nameOrNode, str) else nameOrNode
    if node is None or node.Class() != "Write":
        raise RuntimeError("fake nuke: execute needs a Write node")
    start = int(root()["first_frame"].value()) if start is None else int(start)
    end = int(root()["last_frame"].value()) if end is None else int(end)
    for frame in range(start, end + 1, int(incr)):
        _write(node, frame)


# --- TCL in file and eval-string knobs ------------------------------------------------------------

_TCL_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


def _tcl_subst(text, node):
    """TCL's ``subst`` of ``text`` as Nuke applies it to file knobs: backslash escapes, ``$name`` /
    ``$env(NAME)`` variables and ``[command ...]`` substitution. Unknown commands and variables raise."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            if i + 1 < n:
                out.append(_TCL_ESCAPES.get(text[i + 1], text[i + 1]))
                i += 2
            else:
                out.append(c)
                i += 1
        elif c == "[":
            depth, j = 1, i + 1
            while j < n and depth:
                if text[j] == "\\":
                    j += 1
                elif text[j] == "[":
                    depth += 1
                elif text[j] == "]":
                    depth -= 1
                j += 1
            if depth:
                raise RuntimeError("fake nuke: missing close-bracket in %r" % text)
            words = [_tcl_subst(word, node) for word in _tcl_words(text[i + 1:j - 1])]   # a result is one word
            out.append(_tcl_command(words, node))
            i = j
        elif c == "$":
            match = re.match(r"\$(\w+)(\((\w+)\))?", text[i:])
            if not match:
                out.append(c)
                i += 1
                continue
            if match.group(1) == "env" and match.group(3):
                if match.group(3) not in os.environ:
                    raise RuntimeError('fake nuke: can\'t read "env(%s)": no such variable' % match.group(3))
                out.append(os.environ[match.group(3)])
            else:
                raise RuntimeError('fake nuke: can\'t read "%s": no such variable' % match.group(1))
            i += len(match.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _tcl_words(text):
    """Split a command at top-level white space (brackets and backslash escapes keep a word together)."""
    words, word, depth, i = [], "", 0, 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            word += text[i:i + 2]
            i += 2
            continue
        depth += (c == "[") - (c == "]")
        if c.isspace() and depth == 0:
            if word:
                words.append(word)
            word = ""
        else:
            word += c
        i += 1
    return words + ([word] if word else [])


def _tcl_command(words, node):
    if not words:
        return ""
    if words[0] == "value" and len(words) == 2:
        if words[1] == "root.name":
            return _fake.script
        owner, _, knob_name = words[1].rpartition(".")
        target = toNode(owner) if owner else node
        knob = target.knob(knob_name) if target is not None else None
        if knob is None:
            raise RuntimeError("fake nuke: no such knob %s" % words[1])
        return str(knob._value)
    if words[0] == "getenv" and len(words) == 2:
        return os.environ.get(words[1], "")
    if words[0] == "file" and len(words) == 3 and words[1] in ("dirname", "tail"):
        return os.path.dirname(words[2]) if words[1] == "dirname" else os.path.basename(words[2])
    raise RuntimeError('fake nuke: invalid command name "%s"' % words[0])


# --- scripts --------------------------------------------------------------------------------------


def _save_node(node):
    data = {"class": node.Class(), "name": node.name(), "inputs": [n.name() if n is not None else None
                                                                      for n in node._inputs],
            "knobs": [], "user_knobs": []}
    for knob in node._knobs.values():
        if knob.name() == "name":
            continue
        if knob._user:
            data["user_knobs"].append(knob._save())
        else:
            data["knobs"].append([knob.name(), knob._value])
    if isinstance(node, Group) and node.Class() != "Root":
        data["children"] = [_save_node(child) for child in node._children]
    return data


def scriptSaveAs(filename=None, overwrite=-1):
    if filename is None:
        raise RuntimeError("fake nuke: scriptSaveAs needs a file name")
    if os.path.exists(filename) and overwrite == 0:
        raise RuntimeError("%s exists" % filename)
    data = {"fake_nuke_script": 1, "root": [[k.name(), k._value] for k in _fake.root._knobs.values()
                                            if k.name() != "name"],
            "nodes": [_save_node(n) for n in _fake.root._children]}
    with open(filename, "w") as handle:
        json.dump(data, handle, indent=1)
    _fake.script = os.path.abspath(filename)


def _load_nodes(group, items):
    made = []
    for item in items:
        node = _make(item["class"], {"name": item["name"]}, group)
        for name, value in item["knobs"]:
            node._knobs[name]._value = value
        for data in item["user_knobs"]:
            knob = _KNOB_CLASSES[data["class"]]._load(data)
            node.addKnob(knob)
        if "children" in item:
            _load_nodes(node, item["children"])
        made.append((node, item["inputs"]))
    for node, inputs in made:
        for i, name in enumerate(inputs):
            if name is not None:
                node.setInput(i, group.node(name))


def scriptClear():
    _fake.new_root()


def scriptOpen(filename):
    with open(filename) as handle:
        data = json.load(handle)
    if data.get("fake_nuke_script") != 1:
        raise RuntimeError("%s: not a script" % filename)
    _fake.new_root()
    for name, value in data["root"]:
        _fake.root._knobs[name]._value = value
    _load_nodes(_fake.root, data["nodes"])
    _fake.script = os.path.abspath(filename)


# --- fake state and test hooks -------------------------------------------------------------------


class _FakeState(object):
    def __init__(self):
        self.reset()

    def new_root(self):
        self.root = Group("Root")
        self.root._knobs["name"]._value = ""
        self.groups = [self.root]
        self.this_nodes = []
        self.script = ""

    def reset(self, gui=False, version=None):
        global NUKE_VERSION_MAJOR
        if version is not None:
            NUKE_VERSION_MAJOR = int(version)
            env._values["NukeVersionMajor"] = NUKE_VERSION_MAJOR
        self.new_root()
        self.gui = gui
        self.progress = []
        self.cancel = None
        self.messages = []
        self.menus = {}
        self.plugin_path = []
        self.in_init = False
        self.written = []
        self.decoded = []
        self.undo = []           # closed undo steps: (name, [(node, knob), ...])
        self.undo_open = None
        self.main_queue: "queue.Queue[typing.Any]" = queue.Queue()

    def record_change(self, knob, old):
        """A knob change is one undo step of its own unless an undo group is open (GUI sessions)."""
        if not self.gui or knob._node is None or old == knob._value:
            return
        change = (knob._node.name(), knob.name())
        if self.undo_open is not None:
            self.undo_open[1].append(change)
        else:
            self.undo.append(("", [change]))

    def run_main_loop(self, until, timeout=120.0):
        """Nuke's event loop for tests: run the calls other threads queued for the main thread until
        ``until()`` holds and nothing is queued (AssertionError after ``timeout`` seconds)."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            try:
                call, args, kwargs, reply = self.main_queue.get(timeout=0.02)
            except queue.Empty:
                if until():
                    return
                if time.monotonic() > deadline:
                    raise AssertionError("fake nuke: the main loop timed out")
                continue
            try:
                result = call(*args, **kwargs)
            except Exception:
                traceback.print_exc()
                result = None
            if reply is not None:
                reply[1][0] = result
                reply[0].set()

    @property
    def gui(self):
        return env["gui"]

    @gui.setter
    def gui(self, value):
        env._values["gui"] = bool(value)

    def startup(self, nuke_path, gui):
        """What Nuke does at start: init.py of each NUKE_PATH folder (reverse order), then menu.py (GUI) of
        every folder on the plugin path."""
        self.gui = gui
        folders = [os.path.abspath(p) for p in nuke_path if p]
        for folder in reversed(folders):
            self.in_init = True
            try:
                pluginAddPath(folder)
            finally:
                self.in_init = False
        if gui:   # menu.py of every plugin path folder, those added by init.py files included
            for folder in reversed(list(self.plugin_path)):
                if os.path.isfile(os.path.join(folder, "menu.py")):
                    _run_file(os.path.join(folder, "menu.py"))


_fake = _FakeState()
