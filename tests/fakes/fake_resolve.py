"""A fake of DaVinci Resolve's scripting objects, for testing the facebridge Resolve script.

Resolve -> ProjectManager -> Project -> MediaPool / Timeline / TimelineItem / MediaPoolItem, with the
render-job methods, plus Fusion's UIManager and ``bmd.UIDispatcher`` for the dialog. Only methods
listed in host_plugins/resolve/README.md (each documented in Blackmagic's scripting README, or for the
UI in its Workflow Integrations README) exist; anything else is an AttributeError.

Pixels are real: clips are EXR image sequences on disk, a render job renders the timeline's record
frames (the topmost clip at each frame, RGB, at the job's EXR codec) into its target folder in a
background thread, and ``ImportMedia`` checks the files it is given.

Where the README leaves semantics open, this fake picks one and the plugin must cope with the other:
``GetMarkInOut`` counts from the timeline start, ``GetSourceStartFrame`` is 0-based within the media,
``GetSourceEndFrame`` and ``GetEnd`` are exclusive, render jobs name frames ``<CustomName>_<record
frame, 8 digits>.exr``.

Test hooks start with ``_`` (``_place``, ``_set_marks``, ``_playhead``, ``_jobs``...) and are never
called by the plugin.
"""

from __future__ import annotations

import os
import re
import threading
import time
from typing import List

RENDER_SETTING_KEYS = {"SelectAllFrames", "MarkIn", "MarkOut", "TargetDir", "CustomName", "UniqueFilenameStyle",
                       "ExportVideo", "ExportAudio", "FormatWidth", "FormatHeight", "FrameRate", "PixelAspectRatio",
                       "VideoQuality", "AudioCodec", "AudioBitDepth", "AudioSampleRate", "ColorSpaceTag", "GammaTag"}
EXR_CODECS = {"RGB Float (No compression)": "RGBFloat", "RGB Float (ZIP)": "RGBFloatZIP",
              "RGB Half (No compression)": "RGBHalf", "RGB Half (ZIP)": "RGBHalfZIP", "RGB Half (DWAA)": "RGBHalfDWAA"}
_TOKEN = re.compile(r"%0?(\d*)d")


def _frame_file(printf, frame):
    match = _TOKEN.search(printf)
    assert match is not None, "no frame token in %r" % printf
    width = int(match.group(1) or 1)
    return printf[:match.start()] + "%0*d" % (width, frame) + printf[match.end():]


class FakeResolve(object):
    def __init__(self, product="DaVinci Resolve Studio", version="20.2.1.4"):
        self._product = product
        self._version = version
        self._pm = ProjectManager()
        self._fusion = FakeFusion()

    def GetProductName(self):
        return self._product

    def GetVersionString(self):
        return self._version

    def GetProjectManager(self):
        return self._pm

    def Fusion(self):
        return self._fusion


class ProjectManager(object):
    def __init__(self):
        self._project = None

    def GetCurrentProject(self):
        return self._project

    def _new_project(self, name):
        self._project = Project(name)
        return self._project


class Project(object):
    def __init__(self, name):
        self._name = name
        self._media_pool = MediaPool(self)
        self._timeline = None
        self._format, self._codec, self._mode = "mov", "H264", 0
        self._settings = {}
        self._jobs = {}
        self._job_count = 0
        self._render_thread = None

    def GetName(self):
        return self._name

    def GetMediaPool(self):
        return self._media_pool

    def GetCurrentTimeline(self):
        return self._timeline

    # rendering
    def GetRenderFormats(self):
        return {"QuickTime": "mov", "EXR": "exr", "TIFF": "tif"}

    def GetRenderCodecs(self, renderFormat):
        return dict(EXR_CODECS) if renderFormat == "EXR" else {"H.264": "H264"}

    def GetCurrentRenderFormatAndCodec(self):
        return {"format": self._format, "codec": self._codec}

    def SetCurrentRenderFormatAndCodec(self, format, codec):
        if format == "EXR" and codec in EXR_CODECS.values() or format != "EXR" and codec == "H264":
            self._format, self._codec = format, codec
            return True
        return False

    def GetCurrentRenderMode(self):
        return self._mode

    def SetCurrentRenderMode(self, renderMode):
        if renderMode not in (0, 1):
            return False
        self._mode = renderMode
        return True

    def SetRenderSettings(self, settings):
        if set(settings) - RENDER_SETTING_KEYS:   # all or nothing, as reported for real builds
            return False
        self._settings.update(settings)
        return True

    def AddRenderJob(self):
        if self._timeline is None:
            return ""
        self._job_count += 1
        job_id = "job-%d" % self._job_count
        self._jobs[job_id] = {"settings": dict(self._settings), "format": self._format, "codec": self._codec,
                              "mode": self._mode, "JobStatus": "Ready", "CompletionPercentage": 0}
        return job_id

    def StartRendering(self, jobIds, isInteractiveMode=False):
        jobs = [self._jobs[j] for j in jobIds if j in self._jobs]
        if not jobs or self.IsRenderingInProgress():
            return False
        for job in jobs:
            job["JobStatus"] = "Rendering"
        self._render_thread = threading.Thread(target=self._render, args=(jobs,), daemon=True)
        self._render_thread.start()
        return True

    def IsRenderingInProgress(self):
        return self._render_thread is not None and self._render_thread.is_alive()

    def GetRenderJobStatus(self, jobId):
        job = self._jobs.get(jobId)
        if job is None:
            return {}
        return {"JobStatus": job["JobStatus"], "CompletionPercentage": job["CompletionPercentage"]}

    def DeleteRenderJob(self, jobId):
        return self._jobs.pop(jobId, None) is not None

    def _render(self, jobs):
        for job in jobs:
            try:
                self._render_job(job)
                job["JobStatus"] = "Complete"
            except Exception as exc:  # a failed job, as Resolve reports it
                job["JobStatus"] = "Failed"
                job["Error"] = repr(exc)

    def _render_job(self, job):
        import numpy as np
        import OpenImageIO as oiio

        settings = job["settings"]
        if job["format"] != "EXR" or job["mode"] != 1 or not settings.get("ExportVideo", True):
            raise RuntimeError("fake render: only single-clip EXR video renders are implemented")
        timeline = self._timeline
        assert timeline is not None, "AddRenderJob queues jobs only with a current timeline"
        first = settings["MarkIn"] if not settings.get("SelectAllFrames") else timeline.GetStartFrame()
        last = settings["MarkOut"] if not settings.get("SelectAllFrames") else timeline.GetEndFrame() - 1
        fmt = oiio.FLOAT if job["codec"].startswith("RGBFloat") else oiio.HALF
        compression = "zip" if job["codec"].endswith("ZIP") else ("dwaa" if "DWAA" in job["codec"] else "none")
        shape = None
        for index, record in enumerate(range(first, last + 1)):
            item = timeline._item_at(record)
            if item is not None:
                pixels, names = item._source_pixels(record)
                rgb = np.stack([pixels[..., names.index(c)] for c in ("R", "G", "B")], axis=-1)
                shape = rgb.shape
            else:
                if shape is None:
                    raise RuntimeError("fake render: nothing on the timeline at %d" % record)
                rgb = np.zeros(shape, np.float32)
            path = os.path.join(settings["TargetDir"], "%s_%08d.exr" % (settings["CustomName"], record))
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


class MediaPool(object):
    def __init__(self, project):
        self._project = project
        self._items = []

    def ImportMedia(self, items):
        made = []
        for info in items:
            if not isinstance(info, dict):
                raise NotImplementedError("fake ImportMedia: only the clipInfo form is implemented")
            printf, first, last = info["FilePath"], int(info["StartIndex"]), int(info["EndIndex"])
            if any(not os.path.isfile(_frame_file(printf, f)) for f in range(first, last + 1)):
                continue
            made.append(MediaPoolItem(printf, first, last))
        self._items.extend(made)
        return made

    def AppendToTimeline(self, clips):
        timeline = self._project._timeline
        placed = []
        for info in clips:
            if not isinstance(info, dict):
                raise NotImplementedError("fake AppendToTimeline: only the clipInfo form is implemented")
            media = info["mediaPoolItem"]
            start, end = int(info["startFrame"]), int(info["endFrame"])
            track = int(info.get("trackIndex", 1))
            if info.get("mediaType", 1) != 1 or not 1 <= track <= timeline.GetTrackCount("video"):
                return []
            if start < 0 or end > media._last - media._first or end < start:
                return []
            item = TimelineItem(media, track, int(info["recordFrame"]), start, end - start + 1)
            if not timeline._fits(item):
                return []
            timeline._tracks[track - 1].append(item)
            placed.append(item)
        return placed


class MediaPoolItem(object):
    def __init__(self, printf, first, last):
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


class TimelineItem(object):
    def __init__(self, media, track, record, source_offset, duration):
        self._media = media
        self._track = track
        self._record = record
        self._offset = source_offset
        self._duration = duration

    def GetName(self):
        return self._media.GetName()

    def GetStart(self, subframe_precision=False):
        return self._record

    def GetEnd(self, subframe_precision=False):
        return self._record + self._duration

    def GetDuration(self, subframe_precision=False):
        return self._duration

    def GetSourceStartFrame(self):
        return self._offset

    def GetSourceEndFrame(self):
        return self._offset + self._duration

    def GetMediaPoolItem(self):
        return self._media

    def GetTrackTypeAndIndex(self):
        return ["video", self._track]

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


class Timeline(object):
    def __init__(self, name, start=86400):
        self._name = name
        self._start = start
        self._tracks: List[List[TimelineItem]] = [[]]
        self._marks = {}
        self._playhead = start

    def GetName(self):
        return self._name

    def GetStartFrame(self):
        return self._start

    def GetEndFrame(self):
        ends = [item.GetEnd() for track in self._tracks for item in track]
        return max(ends) if ends else self._start

    def GetTrackCount(self, trackType):
        return len(self._tracks) if trackType == "video" else 0

    def AddTrack(self, trackType, subTrackType=None):
        if trackType != "video":
            return False
        self._tracks.append([])
        return True

    def GetItemListInTrack(self, trackType, index):
        if trackType != "video" or not 1 <= index <= len(self._tracks):
            return None
        return sorted(self._tracks[index - 1], key=lambda i: i._record)

    def GetCurrentVideoItem(self):
        return self._item_at(self._playhead)

    def GetMarkInOut(self):
        return {"video": dict(self._marks), "audio": dict(self._marks)} if self._marks else {}

    # test hooks
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
    def __init__(self):
        self.UIManager = FakeUIManager()


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

    def __init__(self):
        self._users = []
        self._seen = []

    def UIDispatcher(self, ui):
        return FakeDispatcher(self)
