"""Draw page 1 of every Decree 56 paper of the sample case (tests/documents/samples.py) into `docs/forms/`, so a
reader sees what the templates print (pdftoppm from poppler-utils, 72 dpi, grey).

    python -m scripts.gen_form_pictures
"""

import shutil
import subprocess
import tempfile
from pathlib import Path

from PIL import Image

from services.cases import documents
from tests.documents.samples import sample_case

TARGET = Path(__file__).resolve().parent.parent / "docs" / "forms"
DPI = 72


def main() -> None:
    tool = shutil.which("pdftoppm")
    if tool is None:
        raise SystemExit("pdftoppm is missing: install poppler-utils (deploy/ci-prereqs.sh)")
    sample = sample_case()
    with tempfile.TemporaryDirectory() as scratch:
        for document in sample.documents:
            pdf, _ = documents.render_paper(document.paper, sample.context(document.paper), document.issued_on, None)
            source = Path(scratch) / f"{document.paper}.pdf"
            source.write_bytes(pdf)
            target = TARGET / f"mau-{document.paper}.png"
            subprocess.run([tool, "-png", "-gray", "-r", str(DPI), "-f", "1", "-l", "1", "-singlefile", str(source),
                            str(target.with_suffix(""))], check=True, timeout=120)
            # 16 shades of grey are enough for text: a quarter of the bytes in the repository.
            Image.open(target).quantize(colors=16).save(target, optimize=True)
            print(target)


if __name__ == "__main__":
    main()
