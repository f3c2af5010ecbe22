"""The console's routers, one per area: pages (log-in, operator), alerts API, analyst, cases, admin."""
