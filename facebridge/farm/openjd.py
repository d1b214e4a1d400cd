"""An Open Job Description job bundle (specification 2023-09) of a :class:`FarmJob`.

``DIR/template.yaml`` has two steps: **Analyse** (one task) and **Render**, which depends on it, with the frames
as a ``CHUNK[INT]`` task parameter (the ``TASK_CHUNKING`` extension; contiguous chunks of ``ChunkSize``
frames, each rendered as ``--frames A-B``). Every path is a job parameter of type PATH, so a farm's path
mapping applies. The specification lets a PATH parameter default only to something inside the bundle, so the
values the job was written with are in the bundle beside the template, once in each tool's form:

    openjd run DIR/template.yaml -p file://DIR/job_params.json --step Render --run-dependencies   # here
    deadline bundle submit DIR          # AWS Deadline Cloud (reads DIR/parameter_values.yaml)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from . import FarmError
from .job import FarmJob, JobPaths, analyse_args, range_expr, render_args, render_report

EXTENSIONS = ["TASK_CHUNKING"]
TEMPLATE_NAME = "template.yaml"
VALUES_NAME = "parameter_values.yaml"
OPENJD_PARAMS_NAME = "job_params.json"
FRAMES_PARAM = "Frames"
"""The Render step's task parameter: one chunk's frames, as ``A-B``."""


def _param(name: str) -> str:
    return "{{Param.%s}}" % name


def _path_param(name: str, value: str, description: str, object_type: str | None = None,
                data_flow: str | None = None) -> dict[str, Any]:
    del value  # given in the parameter files
    definition: dict[str, Any] = {"name": name, "type": "PATH", "description": description}
    if object_type:
        definition["objectType"] = object_type
    if data_flow:
        definition["dataFlow"] = data_flow
    return definition


def parameter_definitions(job: FarmJob) -> list[dict[str, Any]]:
    """The job parameters. The specification lets a PATH default only name something inside the bundle, so the
    paths have none: their values are in the bundle's parameter files (:func:`parameter_values`); the others
    default to the value the job was written with."""
    paths = job.paths
    params: list[dict[str, Any]] = [
        {"name": "FacebridgeCommand", "type": "STRING", "default": job.cli[0],
         "description": "the facebridge command (or the Python that runs it) on the farm machines"},
        {"name": "Shot", "type": "STRING", "default": job.shot, "description": "the shot id every task uses"},
        {"name": "Frames", "type": "STRING", "default": range_expr(job.frames), "description": "frames to render"},
        {"name": "AnalyseFrames", "type": "STRING", "default": range_expr(job.analyse_frames),
         "description": "frames the shot analysis covers"},
        {"name": "ChunkSize", "type": "INT", "default": job.chunk, "minValue": 1,
         "description": "frames per render task"},
        _path_param("InputPattern", paths.input, "input frames (#### or %04d)"),
        _path_param("OutputPattern", paths.output, "output frames (#### or %04d)"),
        _path_param("AnalysisFile", paths.analysis, "the shot's analysis, written by Analyse, read by Render",
                    "FILE"),
        _path_param("ReportDir", paths.report_dir, "one JSON report per task", "DIRECTORY", "OUT"),
    ]
    for i, source in enumerate(paths.sources, 1):
        params.append(_path_param(f"Source{i}", source, f"source identity image {i}", "FILE", "IN"))
    if paths.models_dir is not None:
        params.append(_path_param("ModelsDir", paths.models_dir, "model files", "DIRECTORY", "IN"))
    if paths.cache_dir is not None:
        params.append(_path_param("CacheDir", paths.cache_dir, "the machine's cache dir (local storage)",
                                  "DIRECTORY"))
    return params


def parameter_refs(job: FarmJob) -> JobPaths:
    """The paths as references to the job parameters."""
    paths = job.paths
    return JobPaths(input=_param("InputPattern"), output=_param("OutputPattern"), analysis=_param("AnalysisFile"),
                    report_dir=_param("ReportDir"),
                    sources=tuple(_param(f"Source{i}") for i in range(1, len(paths.sources) + 1)),
                    models_dir=None if paths.models_dir is None else _param("ModelsDir"),
                    cache_dir=None if paths.cache_dir is None else _param("CacheDir"))


def parameter_values(job: FarmJob) -> dict[str, str | int]:
    """Every job parameter's value (name -> value), paths absolute."""
    paths = job.paths
    values: dict[str, str | int] = {
        "FacebridgeCommand": job.cli[0], "Shot": job.shot, "Frames": range_expr(job.frames),
        "AnalyseFrames": range_expr(job.analyse_frames), "ChunkSize": job.chunk, "InputPattern": paths.input,
        "OutputPattern": paths.output, "AnalysisFile": paths.analysis, "ReportDir": paths.report_dir}
    values.update({f"Source{i}": s for i, s in enumerate(paths.sources, 1)})
    if paths.models_dir is not None:
        values["ModelsDir"] = paths.models_dir
    if paths.cache_dir is not None:
        values["CacheDir"] = paths.cache_dir
    return values


def template(job: FarmJob) -> dict[str, Any]:
    """The job template (a JSON/YAML document)."""
    refs = parameter_refs(job)
    prefix = list(job.cli[1:])
    analyse = analyse_args(job, refs, shot=_param("Shot"), frames_text=_param("AnalyseFrames"))
    task_frames = "{{Task.Param.%s}}" % FRAMES_PARAM
    render = render_args(job, refs, task_frames, render_report(refs.report_dir, task_frames), shot=_param("Shot"))
    return {
        "specificationVersion": "jobtemplate-2023-09",
        "extensions": list(EXTENSIONS),
        "name": "facebridge {{Param.Shot}}",
        "description": f"facebridge: analyse the shot once, then render it in chunks ({job.job_name})",
        "parameterDefinitions": parameter_definitions(job),
        "steps": [
            {"name": "Analyse",
             "script": {"actions": {"onRun": {"command": _param("FacebridgeCommand"), "args": prefix + analyse}}}},
            {"name": "Render",
             "dependencies": [{"dependsOn": "Analyse"}],
             "parameterSpace": {"taskParameterDefinitions": [
                 {"name": FRAMES_PARAM, "type": "CHUNK[INT]", "range": _param("Frames"),
                  "chunks": {"defaultTaskCount": _param("ChunkSize"), "rangeConstraint": "CONTIGUOUS"}}]},
             "script": {"actions": {"onRun": {"command": _param("FacebridgeCommand"), "args": prefix + render}}}},
        ],
    }


def _openjd_model() -> Any:
    from . import MissingExtra, EXTRA_HINT

    try:
        import openjd.model as model
    except ImportError:
        raise MissingExtra(f"writing an Open Job Description bundle needs openjd-model: {EXTRA_HINT}") from None
    return model


def validate(document: dict[str, Any]) -> None:
    """Check ``document`` as ``openjd check`` does (FarmError with the model's message otherwise)."""
    model = _openjd_model()
    try:
        model.decode_job_template(template=document, supported_extensions=EXTENSIONS)
    except model.DecodeValidationError as exc:
        raise FarmError(f"the job template does not validate: {exc}") from None


def write_bundle(job: FarmJob, folder: str | os.PathLike[str]) -> Path:
    """Write the bundle in ``folder`` (the template validated first); returns the template's path.

    ``template.yaml``; ``parameter_values.yaml`` (the values, in the form ``deadline bundle submit`` reads from a
    bundle); ``job_params.json`` (the same for ``openjd run -p file://...``).
    """
    import yaml  # comes with openjd-model

    document = template(job)
    validate(document)
    values = parameter_values(job)
    files = {TEMPLATE_NAME: yaml.safe_dump(document, sort_keys=False, width=1000),
             VALUES_NAME: yaml.safe_dump({"parameterValues": [{"name": k, "value": v} for k, v in values.items()]},
                                         sort_keys=False, width=1000),
             OPENJD_PARAMS_NAME: json.dumps(values, indent=2) + "\n"}
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            tmp = folder / (name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, folder / name)
    except OSError as exc:
        raise FarmError(f"cannot write the job bundle in {folder}: {exc}") from None
    return folder / TEMPLATE_NAME


def run_command(template_path: str | os.PathLike[str]) -> list[str]:
    """``openjd run`` of the whole job on this machine (the Render step with the Analyse step it depends on)."""
    params = Path(template_path).parent / OPENJD_PARAMS_NAME
    return ["openjd", "run", os.fspath(template_path), "-p", f"file://{params}", "--step", "Render",
            "--run-dependencies"]


__all__ = ["EXTENSIONS", "FRAMES_PARAM", "OPENJD_PARAMS_NAME", "TEMPLATE_NAME", "VALUES_NAME", "parameter_definitions",
           "parameter_refs", "parameter_values", "run_command", "template", "validate", "write_bundle"]
