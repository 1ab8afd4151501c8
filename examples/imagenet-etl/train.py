"""ImageNet training from an aistore-rs cluster, transforms applied by ETLs
next to the data — the shape of the PyTorch ImageNet example
(github.com/pytorch/examples/tree/main/imagenet), with `ImageFolder`
replaced by `aistore_rs.pytorch.Dataset` as in the seed post:

    python train.py --url http://localhost:8080 --bucket imagenet \\
        --train-etl my-first-etl --val-etl my-second-etl --steps 200
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn as nn
import torch.utils.data

from aistore_rs.pytorch import Dataset


def small_net(num_classes: int) -> nn.Module:
    """A small CNN: the example's ResNets are too slow for CPU-only runs."""

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    return nn.Sequential(
        block(3, 16),  # 112
        block(16, 32),  # 56
        block(32, 64),  # 28
        block(64, 64),  # 14
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, num_classes),
    )


class AverageMeter:
    def __init__(self, name: str) -> None:
        self.name, self.sum, self.count = name, 0.0, 0

    def update(self, val: float, n: int = 1) -> None:
        self.sum += val * n
        self.count += n

    @property
    def avg(self) -> float:
        return self.sum / max(1, self.count)


def accuracy(output: torch.Tensor, target: torch.Tensor) -> float:
    with torch.no_grad():
        return (output.argmax(1) == target).float().mean().item() * 100.0


def train(loader, model, criterion, optimizer, epoch: int, args) -> int:
    model.train()
    losses, top1 = AverageMeter("Loss"), AverageMeter("Acc@1")
    end = time.time()
    steps = 0
    for i, (images, target) in enumerate(loader):
        assert images.dtype == torch.float32 and images.shape[1:] == (3, 224, 224), images.shape
        assert target.dtype == torch.int64
        output = model(images)
        loss = criterion(output, target)
        losses.update(loss.item(), images.size(0))
        top1.update(accuracy(output, target), images.size(0))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps += 1
        if i % args.print_freq == 0:
            print(f"Epoch [{epoch}][{i}/{len(loader)}] time {time.time() - end:.3f} Loss {losses.avg:.4f} Acc@1 {top1.avg:.2f}", flush=True)
        end = time.time()
        if args.steps and steps >= args.steps:
            break
    return steps


def validate(loader, model, criterion, args) -> float:
    model.eval()
    losses, top1 = AverageMeter("Loss"), AverageMeter("Acc@1")
    with torch.no_grad():
        for i, (images, target) in enumerate(loader):
            output = model(images)
            losses.update(criterion(output, target).item(), images.size(0))
            top1.update(accuracy(output, target), images.size(0))
            if args.val_steps and i + 1 >= args.val_steps:
                break
    print(f" * Val Loss {losses.avg:.4f} Acc@1 {top1.avg:.2f}", flush=True)
    return top1.avg


def main() -> None:
    ap = argparse.ArgumentParser(description="ImageNet training from aistore-rs with near-data ETL")
    ap.add_argument("--url", default="http://localhost:8080")
    ap.add_argument("--bucket", default="imagenet")
    ap.add_argument("--train-etl", default="my-first-etl")
    ap.add_argument("--val-etl", default="my-second-etl")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("-j", "--workers", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("-b", "--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--steps", type=int, default=0, help="stop an epoch after this many steps (0 = whole epoch)")
    ap.add_argument("--val-steps", type=int, default=0)
    ap.add_argument("--print-freq", type=int, default=10)
    args = ap.parse_args()
    torch.manual_seed(0)

    train_loader = torch.utils.data.DataLoader(
        Dataset(
            args.url,
            args.bucket,
            prefix="train/",
            transform_id=args.train_etl,
            transform_filter=lambda object_name: object_name.endswith(".jpg"),
        ),
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        pin_memory=torch.cuda.is_available(),
    )
    val_loader = torch.utils.data.DataLoader(
        Dataset(
            args.url,
            args.bucket,
            prefix="val/",
            transform_id=args.val_etl,
            transform_filter=lambda object_name: object_name.endswith(".jpg"),
        ),
        batch_size=args.batch_size,
        shuffle=False,
        num_workers=args.workers,
        pin_memory=torch.cuda.is_available(),
    )
    model = small_net(args.classes)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), args.lr, momentum=0.9, weight_decay=1e-4)
    for epoch in range(args.epochs):
        steps = train(train_loader, model, criterion, optimizer, epoch, args)
        print(f"epoch {epoch}: {steps} steps", flush=True)
        validate(val_loader, model, criterion, args)


if __name__ == "__main__":
    main()
