"""The live preview: a page that shows the film as it builds, and its static report.

    watch.py ──events──► state.LiveState ──► pagedata.page_data ──► server (JSON, SSE, media)
                                                     │
                                                     └──► report (static HTML in build/report/)

Nothing here builds anything: it reads build/ and the events the engine reports.
"""
