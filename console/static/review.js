// The review queue: confirm / dismiss / mark as false alarm, with a reason, without leaving the page.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  for (const row of document.querySelectorAll("tr[data-detection]")) {
    for (const button of row.querySelectorAll("button[data-verdict]")) {
      button.addEventListener("click", async () => {
        const reason = row.querySelector(".reason").value.trim();
        if (!reason) { row.querySelector(".reason").focus(); row.querySelector(".reason").placeholder = "a reason is required"; return; }
        const response = await fetch("/api/detections/" + encodeURIComponent(row.dataset.detection) + "/review", {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
          body: JSON.stringify({ verdict: button.dataset.verdict, reason }),
        });
        const cell = row.querySelector(".verdict");
        if (response.ok) {
          cell.replaceChildren(Object.assign(document.createElement("span"), { className: "badge", textContent: button.dataset.verdict }),
                               document.createTextNode(" " + reason));
        } else {
          cell.append(" error: " + response.status);
        }
      });
    }
  }
})();
