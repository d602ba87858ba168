/* The admin console's small behaviours (no inline scripts or handlers: the
   Content-Security-Policy allows none):
   - the account menu closes on Escape or a click elsewhere;
   - a shown-once secret selects itself on focus, and its Copy button copies it. */
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.strata-switcher[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) menu.removeAttribute("open");
    });
    var copy = event.target.closest && event.target.closest(".strata-copy");
    if (!copy) return;
    var secret = document.getElementById("strata-secret");
    secret.select();
    (navigator.clipboard ? navigator.clipboard.writeText(secret.value) : Promise.reject())
      .catch(function () { document.execCommand("copy"); })
      .finally(function () { copy.textContent = copy.dataset.copied || "Copied"; });
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      document.querySelectorAll("details.strata-switcher[open]").forEach(function (menu) {
        menu.removeAttribute("open");
      });
    }
  });
  document.addEventListener("focusin", function (event) {
    if (event.target.id === "strata-secret") event.target.select();
  });
})();
