"""The public decision endpoints: the native ``POST /api/v1/decide`` and OFREP (``views``), the
Contentstack Personalize Edge API (``personalize``), and the middleware that skips what
decision requests do not need. Thin: the work is ``experiences.decide``."""
