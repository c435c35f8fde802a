"""``python -m fctune COMMAND``: the ``fctune`` console command without the installed script (the pipeline runs its
steps this way)."""

from fctune.commands import main

raise SystemExit(main())
