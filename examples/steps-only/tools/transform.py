"""Example step program: `transform.py upper|count SOURCE TARGET`."""

import os
import sys
from collections import Counter

mode, source, target = sys.argv[1:4]
with open(source, encoding="utf-8") as fh:
    text = fh.read()
if mode == "upper":
    result = text.upper()
else:
    counts = Counter(word.strip(".,!?") for word in text.split())
    result = "".join(f"{word} {n}\n" for word, n in sorted(counts.items()))
os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
with open(target, "w", encoding="utf-8") as fh:
    fh.write(result)
