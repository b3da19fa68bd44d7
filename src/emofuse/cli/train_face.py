"""``emofuse train-face``: train the face-expression CNN (`fer_cnn`) on FER2013 and save its weights."""

from __future__ import annotations

import argparse

from emofuse.cli.common import HelpFormatter


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train-face", help="train the face-expression CNN on FER2013 (PublicTest picks the "
                              "epoch, PrivateTest is scored once)", formatter_class=HelpFormatter)
    p.add_argument("--out", required=True, help="folder for model.safetensors, config.json and the resume state "
                   "(rerun the same command to resume an interrupted run)")
    p.add_argument("--data", help="data root holding fer2013/fer2013.npz, or the npz itself (default: "
                   "$EMOFUSE_DATA or ../shared/data)")
    p.add_argument("--max-epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of the one-cycle schedule")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--accelerator", default="auto", help="auto (a CUDA GPU when there is one), cpu or gpu")
    p.add_argument("--precision", default="auto", help="auto (bf16/16-mixed on a GPU, 32 on the CPU), 32, "
                   "bf16-mixed, 16-mixed")
    p.add_argument("--limit-train", type=int, help="use only the first N training faces (quick checks)")
    p.add_argument("--init", metavar="DIR", help="start from the weights of a fer_cnn folder (e.g. an earlier "
                   "'train-face --out' or src/emofuse/assets/faces/fer_cnn): a warm restart")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from emofuse.training.face import FaceTrainConfig, train_face

    if args.max_epochs < 1 or args.batch_size < 1 or args.lr <= 0:
        from emofuse.errors import ConfigError

        raise ConfigError("--max-epochs and --batch-size must be >= 1 and --lr > 0")
    cfg = FaceTrainConfig(max_epochs=args.max_epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                          accelerator=args.accelerator, precision=args.precision, limit_train=args.limit_train,
                          init=args.init)
    result = train_face(args.out, args.data, cfg, progress=not args.quiet)
    print(f"best epoch {result.best_epoch}: PublicTest accuracy {result.public_test_acc:.4f} (model selection); "
          f"PrivateTest accuracy {result.private_test_acc:.4f}; {result.train_seconds:.0f} s; "
          f"weights in {result.out_dir / 'model.safetensors'}")
    return 0
