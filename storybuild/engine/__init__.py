"""The engine layer: session, full build, scheduler, action runner, recorder."""
