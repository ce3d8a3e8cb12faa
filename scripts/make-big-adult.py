#!/usr/bin/env python3
"""Large Adult-like input for the streaming benchmarks of `kiban anonymize` (BENCHMARKS.md).

    python3 scripts/make-big-adult.py ../shared/data/adult/adult.csv OUT.csv ROWS

Writes ROWS data rows (plus the header): the Adult rows repeated in file order, with output row
i's age perturbed deterministically to age + ((i + i // n) % 3) - 1, n the Adult rows, clamped
to Adult's range 17..90 (covered by the ARX age hierarchy), so the copies of a row differ (n is
a multiple of 3, so i % 3 alone would perturb every copy alike). The hierarchies of
../shared/data/adult apply unchanged. Do not commit the output.
"""
import sys


def main() -> None:
    source, out, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(source, encoding="utf-8") as f:
        header = f.readline()
        records = [line.rstrip("\n").split(";") for line in f if line.strip()]
    age = header.rstrip("\n").split(";").index("age")
    n = len(records)
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        f.write(header)
        chunk = []
        for i in range(rows):
            fields = list(records[i % n])
            fields[age] = str(min(90, max(17, int(fields[age]) + ((i + i // n) % 3) - 1)))
            chunk.append(";".join(fields))
            if len(chunk) == 100_000:
                f.write("\n".join(chunk) + "\n")
                chunk = []
        if chunk:
            f.write("\n".join(chunk) + "\n")


if __name__ == "__main__":
    main()
