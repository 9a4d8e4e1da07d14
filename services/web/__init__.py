"""The web app: the pages members, community staff, unit organisers and leaders use.

It renders on the server (Jinja2, htmx for partial updates) and holds nothing of its own
but sessions: every figure and every change goes through the four services' public HTTP
API with the signed-in person's token, as any outside client would. It imports no service.
"""
