"""train.py's flags, generated from TrainConfig's fields: a new setting is one field with a comment.

Every setting is a flag named by its dotted path (`--unet.dropout`, `--optim.learning_rate`, `--output_dir`), its
help the comment on its field. SHORT_FLAGS keeps the flags train.py had before the config was nested
(`--learning_rate`, `--data_cache`, `--text_encoder`) as aliases. Flags default to nothing, so a parse holds only
what was typed: the preset fills the rest first, and on resume the checkpoint's architecture does.

transformers' HfArgumentParser makes flags of flat dataclasses; it cannot nest them (a name such as num_frames
would collide), parse tuples, or tell a typed flag from a default. Its string_to_bool parses booleans here.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import io
import tokenize
import types
import typing
from typing import Any

from transformers.hf_argparser import string_to_bool

from text2sign.training.config import DERIVED_FIELDS, PRESETS, SECTIONS, SET_BY_TRAIN, TrainConfig, config_from_preset

# The flags of train.py before the config was nested, kept working as aliases: the README, train.sh and old
# commands use them. A few name the component's field differently (--data_cache is data.cache_dir); the
# component's name is the flag's main name.
SHORT_FLAGS = {
    "data_dir": "data.data_dir", "data_cache": "data.cache_dir", "num_frames": "data.num_frames", "image_size": "data.image_size",
    "val_fraction": "data.val_fraction", "group_pattern": "data.group_pattern", "train_frame_sampling": "data.frame_sampling",
    "model_channels": "unet.model_channels", "channel_mult": "unet.channel_mult", "num_res_blocks": "unet.num_res_blocks",
    "attention_levels": "unet.attention_levels", "gradient_checkpointing": "unet.gradient_checkpointing",
    "text_encoder": "text_encoder.kind", "text_encoder_path": "text_encoder.pretrained_path", "text_max_length": "text_encoder.max_length",
    "text_train_last_n_layers": "text_encoder.train_last_n_layers",
    "prediction_type": "scheduler.prediction_type", "rescale_betas_zero_snr": "scheduler.rescale_betas_zero_snr",
    "caption_dropout_prob": "pipeline.caption_dropout_prob",
    "batch_size": "optim.batch_size", "gradient_accumulation_steps": "optim.gradient_accumulation_steps",
    "learning_rate": "optim.learning_rate", "warmup_steps": "optim.warmup_steps", "num_epochs": "optim.num_epochs",
    "max_steps": "optim.max_steps", "max_minutes": "optim.max_minutes", "lr_schedule": "optim.lr_schedule",
    "ema_max_decay": "optim.ema_max_decay", "seed": "optim.seed", "mixed_precision": "optim.mixed_precision", "compile": "optim.compile",
}
TYPED_FLAGS = "typed_flags"  # namespace attribute: dotted name -> the flag as typed


def field_comments(config_class: type) -> dict[str, str]:
    """Each field's help: the comment after it, else the comment lines right above it, as written in the class."""
    names = {item.name for item in dataclasses.fields(config_class)}
    tokens = tokenize.generate_tokens(io.StringIO(inspect.getsource(config_class)).readline)
    comments, above, line_start, field_name = {}, [], True, None
    for token in tokens:
        if token.type == tokenize.NAME and token.string == "def":
            break  # the fields come before the methods
        if token.type == tokenize.COMMENT:
            text = token.string.lstrip("#").strip()
            if field_name is not None:
                comments[field_name] = text
                above, field_name = [], None
            else:
                above.append(text)
        elif token.type == tokenize.NAME and line_start:
            field_name = token.string if token.string in names else None
        elif token.type == tokenize.NEWLINE:
            if field_name is not None and above:
                comments[field_name] = " ".join(above)
            if field_name is not None:
                above = []
            field_name = None
        line_start = token.type in (tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.COMMENT)
    return comments


def _value_type(hint) -> tuple[Any, bool]:
    """(the type inside an `X | None`, whether None is allowed)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        inner = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        assert len(inner) == 1, f"a config field may be X or X | None, not {hint}"
        return inner[0], True
    return hint, False


def _parser_for(element_type, optional: bool):
    """How argparse turns one word into a value; "none" is None for a field that allows it."""
    parse = string_to_bool if element_type is bool else element_type

    def convert(text: str):
        return None if optional and text.lower() == "none" else parse(text)
    convert.__name__ = element_type.__name__  # argparse names the type in "invalid int value" errors
    return convert


class RecordTyped(argparse.Action):
    """Stores the value and remembers the spelling typed (`--model_channels`), so an error can name it."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, tuple(values) if isinstance(values, list) else values)
        typed = dict(getattr(namespace, TYPED_FLAGS, {}))
        typed[self.dest] = option_string
        setattr(namespace, TYPED_FLAGS, typed)


def _add_fields(group, config_class: type, prefix: str, defaults) -> None:
    short_by_name = {name: short for short, name in SHORT_FLAGS.items()}
    hints = typing.get_type_hints(config_class)
    comments = field_comments(config_class)
    for item in dataclasses.fields(config_class):
        name = f"{prefix}{item.name}"
        if item.name in SECTIONS and not prefix or name in DERIVED_FIELDS or name in SET_BY_TRAIN:
            continue
        value_type, optional = _value_type(hints[item.name])
        options: dict[str, Any] = {}
        if typing.get_origin(value_type) is tuple:
            value_type = typing.get_args(value_type)[0]
            options["nargs"] = "+"
        elif value_type is bool:
            options.update(nargs="?", const=True, metavar="{true,false}")  # `--wandb` alone means true
        options.setdefault("metavar", item.name.upper())
        default = getattr(defaults, item.name)
        shown_default = " ".join(map(str, default)) if isinstance(default, tuple) else default
        help_text = f"{comments.get(item.name, '')} (default: {shown_default})".strip().replace("%", "%%")
        spellings = [f"--{name}"] + ([f"--{short_by_name[name]}"] if name in short_by_name and short_by_name[name] != name else [])
        group.add_argument(*spellings, dest=name, type=_parser_for(value_type, optional), action=RecordTyped,
                           default=argparse.SUPPRESS, help=help_text, **options)


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    defaults = TrainConfig()
    derived = "\n".join(f"  {name}: follows {source}" for name, source in DERIVED_FIELDS.items())
    set_by_train = "\n".join(f"  {name}: {why}" for name, why in SET_BY_TRAIN.items())
    epilog = (f"presets ({', '.join(PRESETS)}) set some of the settings above; a flag typed overrides them by name.\n"
              f"settings the run fills in itself, not flags:\n{derived}\n{set_by_train}")
    parser = argparse.ArgumentParser(description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     usage="%(prog)s [--preset NAME] [--SECTION.SETTING VALUE ...] [--SETTING VALUE ...]",
                                     allow_abbrev=False)  # ~100 flags: a prefix could silently pick the wrong one
    _add_fields(parser.add_argument_group("run"), TrainConfig, "", defaults)
    for section, section_class in SECTIONS.items():
        _add_fields(parser.add_argument_group(f"{section} ({section_class.__name__})"), section_class, f"{section}.", getattr(defaults, section))
    return parser


def typed_flags(args: argparse.Namespace) -> dict[str, str]:
    """Dotted name -> the flag as typed, for every setting given on the command line."""
    return dict(getattr(args, TYPED_FLAGS, {}))


def config_from_flags(args: argparse.Namespace) -> TrainConfig:
    """The preset first (--preset, default standard), then every flag typed, by name."""
    overrides = {name: getattr(args, name) for name in typed_flags(args)}
    preset = overrides.pop("preset", "standard")
    return config_from_preset(preset, overrides)
