/* An audience's page: follow a computation in progress (the size API) and delete through
   the audiences API. No framework. */
(function () {
  "use strict";

  function csrf() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function follow(box) {
    var api = box.dataset.sizeApi;
    var meter = box.querySelector("[data-testid=progress] span");
    function poll() {
      if (document.hidden) { setTimeout(poll, 2000); return; }
      fetch(api, {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data) { setTimeout(poll, 5000); return; }
          if (data.status !== "computing") { location.reload(); return; }
          if (meter) meter.style.width = Math.round((data.progress || 0) * 100) + "%";
          setTimeout(poll, 1500);
        })
        .catch(function () { setTimeout(poll, 5000); });
    }
    setTimeout(poll, 1000);
  }

  function remove(button) {
    if (!confirm("Delete this audience? Its membership and history go with it.")) return;
    var error = document.querySelector("[data-testid=delete-error]");
    button.disabled = true;
    fetch(button.dataset.deleteApi, {method: "DELETE", credentials: "same-origin",
                                     headers: {"X-CSRFToken": csrf(), "Accept": "application/json"}})
      .then(function (r) {
        if (r.ok) { location.href = button.dataset.after; return null; }
        return r.json().catch(function () { return {message: "Error " + r.status}; });
      })
      .then(function (body) {
        if (!body) return;
        button.disabled = false;
        error.textContent = body.message || "The audience could not be deleted.";
        error.hidden = false;
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("audience-status");
    if (box && box.dataset.status === "computing") follow(box);
    var button = document.querySelector("[data-delete-api]");
    if (button) button.addEventListener("click", function () { remove(button); });
  });
})();
