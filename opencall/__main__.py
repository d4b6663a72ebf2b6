from opencall.cli import main

raise SystemExit(main())
