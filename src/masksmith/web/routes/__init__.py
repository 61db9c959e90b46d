"""The app's routers, one per resource: data sets, runs (training), models, results (try it)."""
