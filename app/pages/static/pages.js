// The Orders page: while an order is still Placed, fetch the table again every second
// and swap it in, so Confirmed or Rejected shows without a reload. No library.
(function () {
  const holder = document.querySelector("[data-refresh]");
  if (!holder) return;
  async function refresh() {
    const table = holder.querySelector("table");
    if (!table || table.dataset.pending !== "true") return;
    try {
      const answer = await fetch(holder.dataset.refresh, { credentials: "same-origin" });
      if (answer.ok) holder.innerHTML = await answer.text();
    } catch (error) {
      // The service is away for a moment: try again on the next tick.
    }
    setTimeout(refresh, 1000);
  }
  setTimeout(refresh, 1000);
})();
