"""A fake of DaVinci Resolve's scripting objects, for testing the facebridge Resolve script.

Resolve -> ProjectManager -> Project -> MediaPool / Folder / Timeline / TimelineItem / MediaPoolItem,
with the render-job methods, plus Fusion's UIManager and ``bmd.UIDispatcher`` for the dialog.

**One API surface per Resolve version.** :data:`API` lists, per class, every method this fake
implements and the version profiles whose scripting README lists it. Calling a method that the
profile's text lacks raises AttributeError, as a script that relies on it would see. The texts are
Blackmagic's ``Developer/Scripting/README.txt`` as stored in ynput/ayon-resolve's history:

- ``"18.5"``: ``client/ayon_resolve/RESOLVE_API_v18.0.4.txt`` ("Updated as of 9 May 2022", commit
  c7992b2). No 18.5 text is public in that repository; 18.5 is taken to offer no more than 18.0.4
  (stricter, never kinder).
- ``"19.0"``: ``client/ayon_resolve/RESOLVE_API_v19.0B-build20.txt`` ("Last Updated: 1 April 2024",
  commit d385b73).
- ``"20.3"``: ``client/ayon_resolve/RESOLVE_API_v20.3.2-build9.txt`` ("Last Updated: 7 Oct 2025",
  commit 40de16b).

Semantics the texts leave open are decided the strict way, each traceable:

- ``AppendToTimeline`` clipInfo: 18.0.4 documents "mediaPoolItem", "startFrame", "endFrame",
  "mediaType" only; "trackIndex" and "recordFrame" from 19.0 (the 18.5 profile refuses them).
  ``endFrame`` is exclusive (Blackmagic forum, viewtopic.php?t=216063: startFrame 0, endFrame 25 =
  "the first 25 frames"); an ``endFrame`` past the clip is refused (empty list). It places on the
  project's *current* timeline, as "Appends ... in the current timeline" says.
- ``ImportMedia`` imports "into current Media Pool folder": the current folder is state.
- ``GetRenderFormats`` is "format -> file extension"; ``GetRenderCodecs``/``SetCurrentRenderFormatAndCodec``
  take the format's extension value (``"exr"``), as public scripts pass it; the key (``"EXR"``) is refused.
- ``GetRenderJobStatus``'s ``JobStatus`` follows the UI language: this fake speaks Chinese.
- There is no ``GetRenderSettings``: what ``SetRenderSettings`` sets persists (the Deliver page) until
  set again or a render preset is loaded; ``SaveAsNewRenderPreset`` needs a new name.
- ``Timeline.GetMarkInOut`` (20.x) counts from the timeline start (the README's example ``'in': 0``);
  ``_placeholder_marks`` makes it return the ``{'in': 0, 'out': 0}`` some 20.x builds give when unset.
- ``GetSourceStartFrame`` is 0-based within the media, ``GetSourceEndFrame``/``GetEnd`` exclusive.
- A render job of an image sequence writes ``<TargetDir>/<CustomName>/<CustomName>_<record frame, 8
  digits>.exr`` (a subfolder, as Resolve does for image sequences).
- The free edition's ``fusion.UIManager`` is None from 19.1 (the 20.3 profile).

Pixels are real: clips are EXR image sequences on disk, a render job renders the timeline's record
frames (the topmost clip at each frame, RGB) in a background thread, ``ImportMedia`` checks the files.

Test hooks start with ``_`` (``_set_marks``, ``_playhead``, ``_deliver_state``...) and are never called
by the plugin.
"""

from __future__ import annotations

import copy
import os
import re
import threading
import time
from typing import Any, Dict, FrozenSet, List

PROFILES = ("18.5", "19.0", "20.3")
VERSION_STRINGS = {"18.5": "18.5.1.6", "19.0": "19.0.3.7", "20.3": "20.3.2.9"}
_ALL: FrozenSet[str] = frozenset(PROFILES)
_FROM_19: FrozenSet[str] = frozenset(("19.0", "20.3"))
_FROM_20: FrozenSet[str] = frozenset(("20.3",))


def _table(all_versions: str, from_19: str = "", from_20: str = "") -> Dict[str, FrozenSet[str]]:
    table = {name: _ALL for name in all_versions.split()}
    table.update({name: _FROM_19 for name in from_19.split()})
    table.update({name: _FROM_20 for name in from_20.split()})
    return table


# Method -> the profiles whose README text lists it (the only methods this fake implements).
API: Dict[str, Dict[str, FrozenSet[str]]] = {
    "Resolve": _table("Fusion GetProductName GetVersionString GetProjectManager"),
    "ProjectManager": _table("GetCurrentProject"),
    "Project": _table("GetName GetMediaPool GetCurrentTimeline SetCurrentTimeline GetRenderFormats GetRenderCodecs "
                      "GetCurrentRenderFormatAndCodec SetCurrentRenderFormatAndCodec GetCurrentRenderMode "
                      "SetCurrentRenderMode SetRenderSettings AddRenderJob StartRendering IsRenderingInProgress "
                      "GetRenderJobStatus DeleteRenderJob SaveAsNewRenderPreset LoadRenderPreset",
                      from_20="DeleteRenderPreset"),
    "MediaPool": _table("GetRootFolder GetCurrentFolder SetCurrentFolder AddSubFolder ImportMedia AppendToTimeline"),
    "Folder": _table("GetName GetClipList GetSubFolderList"),
    "MediaPoolItem": _table("GetName GetClipProperty"),
    "Timeline": _table("GetName GetStartFrame GetEndFrame GetTrackCount GetItemListInTrack GetCurrentVideoItem",
                       from_19="AddTrack DeleteClips", from_20="GetMarkInOut"),
    "TimelineItem": _table("GetName GetStart GetEnd GetDuration GetMediaPoolItem CopyGrades",
                           from_20="GetSourceStartFrame GetSourceEndFrame GetTrackTypeAndIndex"),
}
APPEND_KEYS = {"18.5": {"mediaPoolItem", "startFrame", "endFrame", "mediaType"},
               "19.0": {"mediaPoolItem", "startFrame", "endFrame", "mediaType", "trackIndex", "recordFrame"},
               "20.3": {"mediaPoolItem", "startFrame", "endFrame", "mediaType", "trackIndex", "recordFrame"}}
RENDER_SETTING_KEYS = {"SelectAllFrames", "MarkIn", "MarkOut", "TargetDir", "CustomName", "UniqueFilenameStyle",
                       "ExportVideo", "ExportAudio", "FormatWidth", "FormatHeight", "FrameRate", "PixelAspectRatio",
                       "VideoQuality", "AudioCodec", "AudioBitDepth", "AudioSampleRate", "ColorSpaceTag", "GammaTag"}
RENDER_FORMATS = {"QuickTime": "mov", "EXR": "exr", "TIFF": "tif"}
EXR_CODECS = {"RGB Float (No compression)": "RGBFloat", "RGB Float (ZIP)": "RGBFloatZIP",
              "RGB Half (No compression)": "RGBHalf", "RGB Half (ZIP)": "RGBHalfZIP", "RGB Half (DWAA)": "RGBHalfDWAA"}
CODECS = {"mov": {"H.264": "H264", "Apple ProRes 422 HQ": "ProRes422HQ"}, "exr": EXR_CODECS,
          "tif": {"RGB 16 bits": "RGB16"}}
JOB_STATUS = {"ready": "准备就绪", "rendering": "渲染中", "complete": "已完成", "cancelled": "已取消", "failed": "失败"}
DELIVER_PAGE: Dict[str, Any] = {"format": "mov", "codec": "ProRes422HQ", "mode": 0,
                "settings": {"SelectAllFrames": True, "MarkIn": 0, "MarkOut": 0, "TargetDir": "/deliveries/show_a",
                             "CustomName": "reel1_master", "UniqueFilenameStyle": 1, "ExportVideo": True,
                             "ExportAudio": True}}
_TOKEN = re.compile(r"%0?(\d*)d")


def _frame_file(printf, frame):
    match = _TOKEN.search(printf)
    assert match is not None, "no frame token in %r" % printf
    width = int(match.group(1) or 1)
    return printf[:match.start()] + "%0*d" % (width, frame) + printf[match.end():]


class _Api(object):
    """Public methods exist only where the profile's README text lists them (:data:`API`)."""

    _api = ""

    def __getattribute__(self, name):
        if not name.startswith("_"):
            api = object.__getattribute__(self, "_api")
            profile = object.__getattribute__(self, "_profile")
            if profile not in API[api].get(name, ()):
                raise AttributeError("'%s' object has no attribute '%s' (not in the Resolve %s scripting README)"
                                     % (api, name, profile))
        return object.__getattribute__(self, name)


class FakeResolve(_Api):
    _api = "Resolve"

    def __init__(self, product="DaVinci Resolve Studio", profile="20.3"):
        assert profile in PROFILES, profile
        self._profile = profile
        self._product = product
        self._pm = ProjectManager(profile)
        free = "studio" not in product.lower()
        self._fusion = FakeFusion(None if free and float(profile) >= 19.1 else FakeUIManager())

    def GetProductName(self):
        return self._product

    def GetVersionString(self):
        return VERSION_STRINGS[self._profile]

    def GetProjectManager(self):
        return self._pm

    def Fusion(self):
        return self._fusion


class ProjectManager(_Api):
    _api = "ProjectManager"

    def __init__(self, profile):
        self._profile = profile
        self._project = None

    def GetCurrentProject(self):
        return self._project

    def _new_project(self, name):
        self._project = Project(self._profile, name)
        return self._project


class Project(_Api):
    _api = "Project"

    def __init__(self, profile, name):
        self._profile = profile
        self._name = name
        self._media_pool = MediaPool(self)
        self._timeline = None          # the current timeline
        self._timelines: List[Timeline] = []
        self._deliver = copy.deepcopy(DELIVER_PAGE)
        self._presets = {"H.264 Master": copy.deepcopy(DELIVER_PAGE)}
        self._jobs = {}
        self._job_count = 0
        self._render_thread = None
        self._cancel_after = None      # test hook: the render job is cancelled after this many frames

    def GetName(self):
        return self._name

    def GetMediaPool(self):
        return self._media_pool

    def GetCurrentTimeline(self):
        return self._timeline

    def SetCurrentTimeline(self, timeline):
        if timeline not in self._timelines:
            return False
        self._timeline = timeline
        return True

    # rendering
    def GetRenderFormats(self):
        return dict(RENDER_FORMATS)

    def GetRenderCodecs(self, renderFormat):
        return dict(CODECS.get(renderFormat, {}))

    def GetCurrentRenderFormatAndCodec(self):
        return {"format": self._deliver["format"], "codec": self._deliver["codec"]}

    def SetCurrentRenderFormatAndCodec(self, format, codec):
        if codec not in CODECS.get(format, {}).values():
            return False
        self._deliver["format"], self._deliver["codec"] = format, codec
        return True

    def GetCurrentRenderMode(self):
        return self._deliver["mode"]

    def SetCurrentRenderMode(self, renderMode):
        if renderMode not in (0, 1):
            return False
        self._deliver["mode"] = renderMode
        return True

    def SetRenderSettings(self, settings):
        if set(settings) - RENDER_SETTING_KEYS:   # all or nothing, as reported for real builds
            return False
        self._deliver["settings"].update(settings)
        return True

    def SaveAsNewRenderPreset(self, presetName):
        if not presetName or presetName in self._presets:
            return False
        self._presets[presetName] = copy.deepcopy(self._deliver)
        return True

    def LoadRenderPreset(self, presetName):
        if presetName not in self._presets:
            return False
        self._deliver = copy.deepcopy(self._presets[presetName])
        return True

    def DeleteRenderPreset(self, presetName):
        return self._presets.pop(presetName, None) is not None

    def AddRenderJob(self):
        if self._timeline is None:
            return ""
        self._job_count += 1
        job_id = "%08x-job-%d" % (id(self) & 0xffffffff, self._job_count)
        self._jobs[job_id] = {"deliver": copy.deepcopy(self._deliver), "timeline": self._timeline,
                              "status": "ready", "CompletionPercentage": 0}
        return job_id

    def StartRendering(self, jobIds, isInteractiveMode=False):
        jobs = [self._jobs[j] for j in jobIds if j in self._jobs]
        if not jobs or self.IsRenderingInProgress():
            return False
        for job in jobs:
            job["status"] = "rendering"
        self._render_thread = threading.Thread(target=self._render, args=(jobs,), daemon=True)
        self._render_thread.start()
        return True

    def IsRenderingInProgress(self):
        return self._render_thread is not None and self._render_thread.is_alive()

    def GetRenderJobStatus(self, jobId):
        job = self._jobs.get(jobId)
        if job is None:
            return {}
        return {"JobStatus": JOB_STATUS[job["status"]], "CompletionPercentage": job["CompletionPercentage"]}

    def DeleteRenderJob(self, jobId):
        return self._jobs.pop(jobId, None) is not None

    # test hooks
    def _new_timeline(self, name, start=86400):
        timeline = Timeline(self, name, start)
        self._timelines.append(timeline)
        if self._timeline is None:
            self._timeline = timeline
        return timeline

    def _deliver_state(self):
        return copy.deepcopy(self._deliver)

    def _render(self, jobs):
        for job in jobs:
            try:
                job["status"] = "complete" if self._render_job(job) else "cancelled"
            except Exception as exc:  # a failed job, as Resolve reports it
                job["status"] = "failed"
                job["Error"] = repr(exc)

    def _render_job(self, job):
        import numpy as np
        import OpenImageIO as oiio

        deliver = job["deliver"]
        settings = deliver["settings"]
        if deliver["format"] != "exr" or deliver["mode"] != 1 or not settings.get("ExportVideo", True):
            raise RuntimeError("fake render: only single-clip EXR video renders are implemented")
        if settings.get("ExportAudio", True):
            raise RuntimeError("fake render: an EXR sequence cannot carry audio")
        timeline = job["timeline"]
        first = settings["MarkIn"] if not settings.get("SelectAllFrames") else timeline.GetStartFrame()
        last = settings["MarkOut"] if not settings.get("SelectAllFrames") else timeline.GetEndFrame() - 1
        codec = deliver["codec"]
        fmt = oiio.FLOAT if codec.startswith("RGBFloat") else oiio.HALF
        compression = "zip" if codec.endswith("ZIP") else ("dwaa" if "DWAA" in codec else "none")
        folder = os.path.join(settings["TargetDir"], settings["CustomName"])
        os.makedirs(folder, exist_ok=True)
        shape = None
        for index, record in enumerate(range(first, last + 1)):
            if self._cancel_after is not None and index >= self._cancel_after:
                return False
            item = timeline._item_at(record)
            if item is not None:
                pixels, names = item._source_pixels(record)
                rgb = np.stack([pixels[..., names.index(c)] for c in ("R", "G", "B")], axis=-1)
                shape = rgb.shape
            else:
                if shape is None:
                    raise RuntimeError("fake render: nothing on the timeline at %d" % record)
                rgb = np.zeros(shape, np.float32)
            path = os.path.join(folder, "%s_%08d.exr" % (settings["CustomName"], record))
            spec = oiio.ImageSpec(rgb.shape[1], rgb.shape[0], 3, fmt)
            spec.channelnames = ("R", "G", "B")
            spec.attribute("compression", compression)
            out = oiio.ImageOutput.create(path)
            if out is None or not out.open(path, spec):
                raise RuntimeError(oiio.geterror())
            out.write_image(np.ascontiguousarray(rgb, np.float32))
            out.close()
            job["CompletionPercentage"] = int(100 * (index + 1) / (last - first + 1))
            time.sleep(0.01)
        return True


class Folder(_Api):
    _api = "Folder"

    def __init__(self, profile, name):
        self._profile = profile
        self._name = name
        self._clips: list = []
        self._subfolders: list = []

    def GetName(self):
        return self._name

    def GetClipList(self):
        return list(self._clips)

    def GetSubFolderList(self):
        return list(self._subfolders)

    def _walk(self):
        yield self
        for sub in self._subfolders:
            for folder in sub._walk():
                yield folder


class MediaPool(_Api):
    _api = "MediaPool"

    def __init__(self, project):
        self._profile = project._profile
        self._project = project
        self._root = Folder(self._profile, "Master")
        self._current = self._root

    def GetRootFolder(self):
        return self._root

    def GetCurrentFolder(self):
        return self._current

    def SetCurrentFolder(self, Folder):
        if not any(Folder is f for f in self._root._walk()):
            return False
        self._current = Folder
        return True

    def AddSubFolder(self, folder, name):
        if not any(folder is f for f in self._root._walk()) or not name:
            return None
        made = Folder(self._profile, str(name))
        folder._subfolders.append(made)
        return made

    def ImportMedia(self, items):
        made = []
        for info in items:
            if not isinstance(info, dict):
                raise NotImplementedError("fake ImportMedia: only the clipInfo form is implemented")
            printf, first, last = info["FilePath"], int(info["StartIndex"]), int(info["EndIndex"])
            if any(not os.path.isfile(_frame_file(printf, f)) for f in range(first, last + 1)):
                continue
            made.append(MediaPoolItem(self._profile, printf, first, last))
        self._current._clips.extend(made)
        return made

    def AppendToTimeline(self, clips):
        timeline = self._project._timeline
        if timeline is None:
            return []
        placed = []
        for info in clips:
            if not isinstance(info, dict):
                raise NotImplementedError("fake AppendToTimeline: only the clipInfo form is implemented")
            if set(info) - APPEND_KEYS[self._profile]:
                return []   # keys this version's README does not document
            media = info["mediaPoolItem"]
            start, end = info["startFrame"], info["endFrame"]   # end exclusive
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)):
                return []
            track = info.get("trackIndex", 1)
            if info.get("mediaType", 1) != 1 or not 1 <= track <= timeline._track_count():
                return []
            if start < 0 or end > media._last - media._first + 1 or end <= start:
                return []
            record = info["recordFrame"] if "recordFrame" in info else timeline._track_end(track)
            item = TimelineItem(self._profile, media, track, int(record), start, end - start)
            if timeline._end_inclusive:
                item._duration += 1   # test hook: a build that reads endFrame as inclusive
                if start + item._duration > media._last - media._first + 1:
                    return []
            if not timeline._fits(item):
                return []
            item._broken = timeline._broken_placements
            timeline._tracks[track - 1].append(item)
            placed.append(item)
        return placed


class MediaPoolItem(_Api):
    _api = "MediaPoolItem"

    def __init__(self, profile, printf, first, last):
        self._profile = profile
        self._printf = printf
        self._first = first
        self._last = last
        match = _TOKEN.search(printf)
        assert match is not None, "no frame token in %r" % printf
        width = int(match.group(1) or 1)
        self._bracket = "%s[%0*d-%0*d]%s" % (printf[:match.start()], width, first, width, last, printf[match.end():])

    def GetName(self):
        return os.path.basename(self._bracket)

    def GetClipProperty(self, propertyName=None):
        props = {"File Path": self._bracket, "Clip Name": self.GetName(), "Start": str(self._first),
                 "End": str(self._last), "Frames": str(self._last - self._first + 1), "Type": "Video"}
        return props if propertyName is None else props.get(propertyName, "")


class TimelineItem(_Api):
    _api = "TimelineItem"

    def __init__(self, profile, media, track, record, source_offset, duration):
        self._profile = profile
        self._media = media
        self._track = track
        self._record = record
        self._offset = source_offset
        self._duration = duration
        self._grade = None      # test hook: a name standing for the item's grade
        self._broken = False    # test hook: getters answer None (a failed placement)

    def GetName(self):
        return self._media.GetName()

    def GetStart(self, subframe_precision=False):
        return None if self._broken else self._record

    def GetEnd(self, subframe_precision=False):
        return None if self._broken else self._record + self._duration

    def GetDuration(self, subframe_precision=False):
        return None if self._broken else self._duration

    def GetSourceStartFrame(self):
        return self._offset

    def GetSourceEndFrame(self):
        return self._offset + self._duration

    def GetMediaPoolItem(self):
        return self._media

    def GetTrackTypeAndIndex(self):
        return ["video", self._track]

    def CopyGrades(self, tgtTimelineItems):
        if not tgtTimelineItems or not all(isinstance(t, TimelineItem) for t in tgtTimelineItems):
            return False
        for target in tgtTimelineItems:
            target._grade = self._grade
        return True

    def _source_pixels(self, record):
        import OpenImageIO as oiio

        frame = self._media._first + self._offset + (record - self._record)
        inp = oiio.ImageInput.open(_frame_file(self._media._printf, frame))
        assert inp is not None, oiio.geterror()
        spec = inp.spec()
        pixels = inp.read_image(format=oiio.FLOAT)
        assert pixels is not None, inp.geterror()
        inp.close()
        return pixels.reshape(spec.height, spec.width, spec.nchannels), list(spec.channelnames)


class Timeline(_Api):
    _api = "Timeline"

    def __init__(self, project, name, start=86400):
        self._profile = project._profile
        self._project = project
        self._name = name
        self._start = start
        self._tracks: List[List[TimelineItem]] = [[]]
        self._marks = {}
        self._playhead = start
        self._placeholder_marks = False   # test hook: {'in': 0, 'out': 0} when no marks are set (some 20.x builds)
        self._end_inclusive = False       # test hook: a build reading AppendToTimeline's endFrame as inclusive
        self._broken_placements = False   # test hook: placed items whose getters answer None

    def GetName(self):
        return self._name

    def GetStartFrame(self):
        return self._start

    def GetEndFrame(self):
        ends = [item._record + item._duration for track in self._tracks for item in track]
        return max(ends) if ends else self._start

    def GetTrackCount(self, trackType):
        return self._track_count() if trackType == "video" else 0

    def AddTrack(self, trackType, newTrackOptions=None):
        if trackType != "video" or newTrackOptions is not None:
            return False
        self._tracks.append([])
        return True

    def DeleteClips(self, timelineItems, ripple=False):
        found = [t for t in timelineItems if any(t in track for track in self._tracks)]
        if ripple or not found or len(found) != len(timelineItems):
            return False
        for track in self._tracks:
            track[:] = [t for t in track if t not in found]
        return True

    def GetItemListInTrack(self, trackType, index):
        if trackType != "video" or not 1 <= index <= len(self._tracks):
            return None
        return sorted(self._tracks[index - 1], key=lambda i: i._record)

    def GetCurrentVideoItem(self):
        return self._item_at(self._playhead)

    def GetMarkInOut(self):
        if not self._marks:
            return {"video": {"in": 0, "out": 0}, "audio": {"in": 0, "out": 0}} if self._placeholder_marks else {}
        return {"video": dict(self._marks), "audio": dict(self._marks)}

    # test hooks
    def _track_count(self):
        return len(self._tracks)

    def _track_end(self, track):
        items = self._tracks[track - 1]
        return max([i._record + i._duration for i in items] or [self._start])

    def _item_at(self, record):
        for track in reversed(self._tracks):
            for item in track:
                if item._record <= record < item._record + item._duration:
                    return item
        return None

    def _fits(self, new):
        return all(new._record + new._duration <= item._record or item._record + item._duration <= new._record
                   for item in self._tracks[new._track - 1])

    def _set_marks(self, first, last):
        self._marks = {"in": first - self._start, "out": last - self._start}


# --- Fusion UIManager ------------------------------------------------------------------------------


class FakeFusion(object):
    def __init__(self, ui_manager):
        self.UIManager = ui_manager


class _Element(object):
    def __init__(self, kind, props, children):
        object.__setattr__(self, "_kind", kind)
        object.__setattr__(self, "_props", dict(props))
        object.__setattr__(self, "_children", list(children))
        object.__setattr__(self, "_items", [])
        self._props.setdefault("CurrentIndex", 0)

    def __getattr__(self, name):
        if name == "CurrentText":
            items = self._items
            return items[self._props["CurrentIndex"]] if items else ""
        if name in self._props:
            return self._props[name]
        if name in ("Text",):
            return ""
        raise AttributeError("fake UI %s has no %s" % (self._kind, name))

    def __setattr__(self, name, value):
        self._props[name] = value

    def AddItem(self, text):
        self._items.append(str(text))

    def _walk(self):
        yield self
        for child in self._children:
            for element in child._walk():
                yield element


class FakeUIManager(object):
    """``fusion.UIManager``: element constructors taking (props), (children) or (props, children)."""

    def _element(self, kind, *args):
        props, children = {}, []
        for arg in args:
            if isinstance(arg, dict):
                props = arg
            else:
                children = list(arg)
        return _Element(kind, props, children)

    def VGroup(self, *args):
        return self._element("VGroup", *args)

    def HGroup(self, *args):
        return self._element("HGroup", *args)

    def Label(self, *args):
        return self._element("Label", *args)

    def LineEdit(self, *args):
        return self._element("LineEdit", *args)

    def ComboBox(self, *args):
        return self._element("ComboBox", *args)

    def Button(self, *args):
        return self._element("Button", *args)


class _Events(object):
    class _Slot(object):
        pass

    def __init__(self):
        object.__setattr__(self, "_slots", {})

    def __getattr__(self, name):
        return self._slots.setdefault(name, _Events._Slot())


class FakeWindow(object):
    def __init__(self, props, root):
        self._props = props
        self._root = root
        self.On = _Events()
        self._shown = False

    def Find(self, id):
        for element in self._root._walk():
            if element._props.get("ID") == id:
                return element
        return None

    def Show(self):
        self._shown = True

    def Hide(self):
        self._shown = False

    # test hooks
    def _click(self, id):
        self.On._slots[id].Clicked({"who": id})

    def _text(self):
        return " ".join(str(e._props.get("Text", "")) for e in self._root._walk() if e._kind == "Label")


class FakeDispatcher(object):
    """``bmd.UIDispatcher(ui)``: ``RunLoop`` plays the test's scripted user on the shown window."""

    def __init__(self, bmd):
        self._bmd = bmd
        self._windows = []
        self._running = False

    def AddWindow(self, props, root):
        window = FakeWindow(props, root)
        self._windows.append(window)
        return window

    def RunLoop(self):
        window = [w for w in self._windows if w._shown][-1]
        self._running = True
        self._bmd._seen.append((window._props.get("ID"), window))
        actions = self._bmd._users.pop(0) if self._bmd._users else _default_user
        actions(window)
        if self._running:
            raise RuntimeError("fake UI: the scripted user left window %s open" % window._props.get("ID"))

    def ExitLoop(self):
        self._running = False


def _default_user(window):
    """Presses OK on a message window (the only default; dialogs need a scripted user)."""
    if window.Find("OK") is None:
        raise RuntimeError("fake UI: no scripted user for window %s" % window._props.get("ID"))
    window._click("OK")


class FakeBmd(object):
    """The ``bmd`` global of a menu script; ``_users`` is the queue of scripted users, one per RunLoop."""

    def __init__(self, resolve=None):
        self._resolve = resolve
        self._users = []
        self._seen = []

    def scriptapp(self, name):
        return self._resolve if name == "Resolve" else None

    def UIDispatcher(self, ui):
        return FakeDispatcher(self)


class FakeApp(object):
    """The ``app`` global of a Scripts-menu script (the Fusion object), offering ``GetResolve``."""

    def __init__(self, resolve):
        self._resolve = resolve

    def GetResolve(self):
        return self._resolve
