"""Privacy (issue #14): data subject requests as records with a lifecycle (``requests``), the
person they name (``people``), what a delete removes beyond ``profiles.gdpr`` (``erase``),
the access document (``access``), the suppression list (``suppress``), and what exports must
ask before sending a profile (``exports``). Their API is ``api``, their page ``views``.

May import cdp_site, ``profiles.models``, ``profiles.identifiers``, ``profiles.gdpr``,
``profiles.masking``, ``profiles.selectors``, ``profiles.processing.identity`` and
``profiles.collection.suppression``; apps above profiles contribute through settings hooks
(``STRATA_PERSON_ERASED_HOOKS``, ``STRATA_PERSON_DATA_HOOKS``).
"""
