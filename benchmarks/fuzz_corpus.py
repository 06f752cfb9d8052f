"""The hostile-input corpus of ``benchmarks/fuzz.py``: files generated into a temp dir, nothing
binary committed.

Each :class:`Case` is one ``vidpan`` command line on one generated input, with what must happen:
``reject`` (exit 2, one line naming the file / key, no traceback, nothing left that looks like
output), ``work`` (exit 0 and a valid output, checked by ``check``), ``partial`` (exit 3: a
truncated download processed up to the damage) or ``any`` (reject or work: a bit flip in tensor
data is a valid, different checkpoint). Categories: containers and streams, frame folders,
weights, ``--set`` overrides, training data, output locations, serve uploads (``fuzz_serve.py``).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import fuzz_media
import fuzz_serve
import torch
from fuzz_inputs import folder, frame, frames_are, save, video
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import vidpan

WEIGHTS = Path(vidpan.__file__).parent / "assets" / "synthetic_tiny" / "model.safetensors"
# Fast settings for the shipped model: no resize (inputs are tiny), online mode.
FAST = ["--no-progress", "--mode", "online", "--set", "inference.short_side=0"]


@dataclass
class Case:
    category: str
    name: str
    argv: list[str]
    expect: str  # reject | work | partial | any
    out: Path | None = None  # output folder to inspect for leftovers
    check: Callable[[Path], str | None] | None = None  # on success: None or what is wrong
    cwd: Path | None = None
    before: list[str] = field(default_factory=list)  # names in ``out`` before the run (user files)
    # A library call instead of a command line (``serve uploads``): an InputError is a rejection.
    call: Callable[[], object] | None = None
    work: Path | None = None  # the call's work directory, checked for leftovers


# ---------------------------------------------------------------------------------------------
# The corpus
# ---------------------------------------------------------------------------------------------


class Corpus:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.cases: list[Case] = []
        self._n = 0

    def _out(self) -> Path:
        self._n += 1
        return self.root / "outs" / f"out{self._n:04d}"

    def segment(self, category: str, name: str, inp: Path | str | list[Path], expect: str, *extra: str,
                check: Callable[[Path], str | None] | None = None, out: Path | None = None,
                weights: Path | str = WEIGHTS, cwd: Path | None = None) -> None:  # fmt: skip
        out = out or self._out()
        before = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
        inputs = [str(i) for i in inp] if isinstance(inp, list) else [str(inp)]
        argv = ["segment", *inputs, "--weights", str(weights), "--out", str(out), *FAST, *extra]
        self.cases.append(Case(category, name, argv, expect, out, check, cwd, before))

    def call(self, category: str, name: str, call: Callable[[], object], expect: str, *, work: Path) -> None:
        self.cases.append(Case(category, name, [], expect, call=call, work=work))

    def build(self) -> list[Case]:
        (self.root / "in").mkdir(parents=True, exist_ok=True)
        (self.root / "outs").mkdir(exist_ok=True)
        fuzz_media.containers(self, self.root / "in" / "containers")
        fuzz_media.folders(self, self.root / "in" / "folders")
        self._weights(self.root / "in" / "weights")
        self._overrides(self.root / "in" / "overrides")
        self._training(self.root / "in" / "training")
        self._outputs(self.root / "in" / "outputs")
        fuzz_serve.frame_limit_case(self, self.root / "in" / "frame_limit")
        fuzz_serve.serve_uploads(self, self.root / "in" / "serve")
        return self.cases

    # -- containers and streams -----------------------------------------------------------

    def _weights(self, d: Path) -> None:
        d.mkdir(parents=True)
        cat = "weights"
        clip = folder(d / "clip", {"0.png": save(Image.fromarray(frame(24, 32)))})
        data = WEIGHTS.read_bytes()
        for frac in (0.0, 0.0001, 0.001, 0.01, 0.3, 0.7, 0.999):
            p = d / f"cut{frac}.safetensors"
            p.write_bytes(data[: int(len(data) * frac)])
            self.segment(cat, f"safetensors truncated at {frac:.2%}", clip, "reject", weights=p)
        header = struct.unpack("<Q", data[:8])[0]
        for k, off in enumerate([0, 3, 8, 20, 100, header // 2, header + 2, header + 7]):
            b = bytearray(data)
            b[off] ^= 0xFF
            p = d / f"flip{k}.safetensors"
            p.write_bytes(bytes(b))
            self.segment(
                cat,
                f"safetensors bit flip at byte {off}",
                clip,
                "reject" if off < header + 8 else "any",
                weights=p,
            )
        for k, off in enumerate([header + 5000, len(data) // 2, len(data) - 3]):
            b = bytearray(data)
            b[off] ^= 0x40
            p = d / f"dataflip{k}.safetensors"
            p.write_bytes(bytes(b))
            self.segment(cat, f"tensor data bit flip at byte {off}", clip, "any", weights=p)
        with safe_open(str(WEIGHTS), "pt") as f:
            metadata = f.metadata()
        state = load_file(str(WEIGHTS))
        key = sorted(k for k in state if k.startswith("segmenter.decoder.") and state[k].ndim == 2)[0]

        def variant(name: str, change: Callable[[dict[str, torch.Tensor]], None], meta: dict[str, str] | None = metadata) -> Path:  # fmt: skip
            s = dict(state)
            change(s)
            p = d / f"{name}.safetensors"
            save_file(s, str(p), metadata=meta)
            return p

        variants = {
            "NaN tensor": lambda s: s.__setitem__(key, torch.full_like(s[key], float("nan"))),
            "Inf tensor": lambda s: s.__setitem__(key, torch.full_like(s[key], float("inf"))),
            "wrong shape": lambda s: s.__setitem__(key, torch.zeros(3, 3)),
            "missing key": lambda s: s.pop(key),
            "extra key": lambda s: s.__setitem__("segmenter.surprise.weight", torch.zeros(2)),
            "no decoder": lambda s: [s.pop(k) for k in list(s) if k.startswith("segmenter.decoder.")],
        }
        for name, change in variants.items():
            self.segment(cat, name, clip, "reject", weights=variant(name.replace(" ", "_"), change))
        # Integer tensors where floats are expected are converted by load_state_dict: valid.
        int_w = variant("int_dtype", lambda s: s.__setitem__(key, s[key].round().to(torch.int64)))
        self.segment(cat, "integer tensor", clip, "any", weights=int_w)
        self.segment(
            cat, "no vidpan metadata", clip, "reject", weights=variant("nometa", lambda s: None, None)
        )
        bad_cfg = {**metadata, "vidpan_config": '{"model": {"num_classes": "many"}}'}
        self.segment(
            cat, "bad embedded config", clip, "reject", weights=variant("badcfg", lambda s: None, bad_cfg)
        )
        not_json = {**metadata, "vidpan_config": "{not json"}
        self.segment(
            cat,
            "embedded config not JSON",
            clip,
            "reject",
            weights=variant("notjson", lambda s: None, not_json),
        )
        self.segment(cat, "wrong preset", clip, "reject", "--preset", "vits")
        self.segment(cat, "unknown preset", clip, "reject", "--preset", "vit-huge")

        class RunsCode:
            def __reduce__(self):  # type: ignore[no-untyped-def]
                return (os.system, (f"touch {d / 'PWNED'}",))

        torch.save({"model": RunsCode()}, d / "evil.pth")
        self.segment(
            cat, "pickle that runs code (.pth)", clip, "reject", "--preset", "tiny", weights=d / "evil.pth"
        )
        import pickle

        (d / "evil.pkl").write_bytes(pickle.dumps({"model": RunsCode()}))
        self.segment(
            cat, "pickle that runs code (.pkl)", clip, "reject", "--preset", "tiny", weights=d / "evil.pkl"
        )
        torch.save(torch.zeros(3), d / "tensor.pth")
        self.segment(
            cat, ".pth holding one tensor", clip, "reject", "--preset", "tiny", weights=d / "tensor.pth"
        )
        torch.save({"model": {"a": 1, "b": "x"}}, d / "values.pth")
        self.segment(
            cat, ".pth with non-tensor values", clip, "reject", "--preset", "tiny", weights=d / "values.pth"
        )
        torch.save({"model": {"w": torch.zeros(2)}}, d / "cut.pth")
        (d / "cut2.pth").write_bytes((d / "cut.pth").read_bytes()[:200])
        self.segment(cat, "truncated .pth", clip, "reject", "--preset", "tiny", weights=d / "cut2.pth")
        (d / "text.safetensors").write_text("hello")
        self.segment(cat, "text named .safetensors", clip, "reject", weights=d / "text.safetensors")
        (d / "dir.safetensors").mkdir()
        self.segment(cat, "folder named .safetensors", clip, "reject", weights=d / "dir.safetensors")
        self.segment(cat, "missing weights", clip, "reject", weights=d / "nope.safetensors")
        (d / "weights.onnx").write_bytes(b"\0" * 10)
        self.segment(
            cat, "unknown weights type", clip, "reject", "--preset", "tiny", weights=d / "weights.onnx"
        )

    # -- --set overrides ----------------------------------------------------------------------

    def _overrides(self, d: Path) -> None:
        clip = folder(d / "clip", {"0.png": save(Image.fromarray(frame(24, 32)))})
        sets = [
            "inference.window_size=0", "inference.window_size=-3", "inference.window_size=1.5", "inference.window_size=abc",
            "inference.short_side=-5", "inference.max_size=0", "inference.segmenter_batch=-1",
            "inference.object_mask_threshold=2", "inference.object_mask_threshold=-0.1", "inference.object_mask_threshold=.nan",
            "inference.overlap_threshold=1.5", "inference.max_instances=0", "inference.chunk_length=0",
            "inference.chunk_overlap=-1", "inference.chunk_overlap=100", "inference.max_input_pixels=-1",
            "inference.mode=fast", "inference.task=panoptic", "inference.window_size=[1, 2]", "inference.window_size={a: 1}",
            "inference.window_size=", "inference.window_size=true",
            "inference.nope=1", "inferencee.window_size=3", "inference=3", "inference.window_size.x=1",
            "model.decoder.num_queries=0", "model.num_classes=0", "model.num_things=-1", "model.pixel_std=[0, 1, 1]",
            "model.pixel_std=[1, 1]", "model.vit.depth=x", "name=[1]", "window_size=3", "=3", "inference.window_size",
            ".window_size=3", "inference..window_size=3", "inference.window_size=!!python/object/apply:os.system ['true']",
            "inference.window_size=[", "model.class_names=5",
        ]  # fmt: skip
        for text in sets:
            self.segment("--set overrides", text, clip, "reject", "--set", text)
        for text in ("inference.segmenter_batch=0", "inference.window_size=1", "inference.object_mask_threshold=0",
                     "inference.max_input_pixels=0", "inference.window_size=1000",
                     "inference.window_size=99999999999999999999999"):  # fmt: skip
            self.segment(
                "--set overrides", f"{text} (valid)", clip, "work", "--set", text, check=frames_are(1)
            )
        for bad in (["--mode", "turbo"], ["--task", "vps,vis,vss,x"], ["--precision", "fp8"], ["--device", "tpu"],
                    ["--device", "cuda:7"], ["--categories", str(d / "nope.json")]):  # fmt: skip
            self.segment("--set overrides", " ".join(bad), clip, "reject", *bad)

    # -- training data ----------------------------------------------------------------------

    def _training(self, d: Path) -> None:
        from vidpan.data.synthetic import generate

        cat = "training data"
        synth = generate(d / "synth", videos=3, frames=4, size=(32, 48), seed=0)
        vip, vspw = synth.vipseg_root, synth.vspw_root

        def train(name: str, root: Path, *extra: str, expect: str = "reject") -> None:
            out = self._out()
            argv = ["train", "--config", "smoke_tiny", "--stage", "segmenter", "--set", f"data.vipseg_root={root}",
                    "--set", f"data.vspw_root={vspw}", "--out", str(out), *extra]  # fmt: skip
            self.cases.append(Case(cat, name, argv, expect, None))

        def broken(name: str, edit: Callable[[Path], None]) -> Path:
            import shutil

            root = d / name
            shutil.copytree(vip, root)
            edit(root)
            return root

        gt = "panoptic_gt_VIPSeg_train.json"
        train("missing root", d / "nope")
        train("malformed JSON", broken("malformed", lambda r: (r / gt).write_text("{not json")))
        train("JSON of the wrong shape", broken("shape", lambda r: (r / gt).write_text("[1, 2, 3]")))

        def empty_split(r: Path) -> None:
            data = json.loads((r / gt).read_text())
            (r / gt).write_text(json.dumps({**data, "videos": [], "annotations": []}))

        train("empty split", broken("empty", empty_split))
        train("empty annotations", broken("noann", lambda r: (r / gt).write_text(json.dumps({"videos": [], "annotations": [], "categories": []}))))  # fmt: skip

        def drop_frame(r: Path) -> None:
            next(iter(sorted((r / "images").rglob("*.jpg")))).unlink()

        def drop_mask(r: Path) -> None:
            next(iter(sorted((r / "panomasksRGB").rglob("*.png")))).unlink()

        def corrupt_mask(r: Path) -> None:
            for png in (r / "panomasksRGB").rglob("*.png"):
                png.write_bytes(b"junk")

        train("missing frame", broken("noframe", drop_frame))
        train("missing mask", broken("nomask", drop_mask))
        train("every mask corrupt", broken("badmask", corrupt_mask))
        train("unknown key", vip, "--set", "solver.base_lrr=1")
        train("base_lr=0", vip, "--set", "solver.base_lr=0")
        train("max_iter=0", vip, "--set", "solver.max_iter=0")
        train("diverging: base_lr=1e9", vip, "--set", "solver.base_lr=1e9")
        train("unknown stage", vip, "--stage", "nope")
        train("missing init", vip, "--set", f"stage.init={d / 'nope.safetensors'}")

    # -- output locations -------------------------------------------------------------------

    def _outputs(self, d: Path) -> None:
        cat = "output locations"
        frames = folder(d / "frames", {"0.png": save(Image.fromarray(frame(24, 32)))})
        clip = video(d / "clip.mp4", n=1)
        self.segment(cat, "--out = the input frame folder", frames, "reject", out=frames)
        self.segment(cat, "--out contains the input video", clip, "reject", out=d)
        self.segment(cat, "--out contains the input folder", frames, "reject", out=d)
        self.segment(cat, "--out /proc/x", frames, "reject", out=Path("/proc/x"))
        self.segment(cat, "--out /proc/self/x/y", frames, "reject", out=Path("/proc/self/x/y"))
        (d / "a_file").write_text("x")
        self.segment(cat, "--out is a file", frames, "reject", out=d / "a_file")
        self.segment(cat, "--out below a file", frames, "reject", out=d / "a_file" / "sub")

        def user_folder(name: str, files: dict[str, str], manifest: list[str] | None = None) -> Path:
            out = d / name
            out.mkdir()
            for n, text in files.items():
                (out / n).write_text(text)
            if manifest is not None:
                (out / ".vidpan-output.json").write_text(
                    json.dumps({"writer": "vidpan", "outputs": manifest})
                )
            return out

        keep = {"notes.txt": "the user's notes"}
        self.segment(cat, "--out holds user files", frames, "work", out=user_folder("user", keep),
                     check=lambda o: None if (o / "notes.txt").read_text() == keep["notes.txt"] else "notes.txt changed")  # fmt: skip
        earlier = user_folder(
            "earlier", {**keep, "pred.json": "{}", "frames.jsonl": ""}, ["pred.json", "frames.jsonl"]
        )
        self.segment(cat, "earlier output, no --overwrite", frames, "reject", out=earlier)
        earlier2 = user_folder(
            "earlier2", {**keep, "pred.json": "{}", "frames.jsonl": ""}, ["pred.json", "frames.jsonl"]
        )
        self.segment(cat, "earlier output, --overwrite", frames, "work", "--overwrite", out=earlier2,
                     check=lambda o: None if (o / "notes.txt").exists() else "notes.txt deleted")  # fmt: skip
        clash = user_folder("clash", {"frames.jsonl": "the user's own file"})
        self.segment(cat, "user file named frames.jsonl", frames, "reject", out=clash)
        clash2 = user_folder("clash2", {"config.yaml": "mine"})
        self.segment(cat, "user config.yaml, --overwrite", frames, "reject", "--overwrite", out=clash2)
        damaged = user_folder("damaged", {}, None)
        (damaged / ".vidpan-output.json").write_text("{broken")
        self.segment(cat, "damaged manifest", frames, "reject", out=damaged)
        work = d / "cwd"
        work.mkdir()
        (work / "mine.txt").write_text("x")
        self.segment(
            cat, "--out . (input elsewhere)", frames, "work", out=Path("."), cwd=work, check=frames_are(1)
        )
        cwd2 = d / "cwd2"
        cwd2.mkdir()
        video(cwd2 / "here.mp4", n=1)
        self.segment(cat, "--out . holding the input", Path("here.mp4"), "reject", out=Path("."), cwd=cwd2)
        self.segment(cat, "--out $PWD holding the input", cwd2 / "here.mp4", "reject", out=cwd2, cwd=cwd2)
        self.segment(
            cat,
            "--out nested new folders",
            frames,
            "work",
            out=d / "n" / "e" / "s" / "t",
            check=frames_are(1),
        )
        self.segment(
            cat, "--out inside the input folder", frames, "work", out=frames / "results", check=frames_are(1)
        )
        twin = folder(d / "x" / "frames", {"0.png": save(Image.fromarray(frame(24, 32)))})
        self.segment(cat, "two inputs, same name", [frames, twin], "reject")
