//! Scenario `oneshot_actors_hang` (bug: two actors call each other and await the replies; they
//! hang).
//!
//! A shop runs two actors, tasks with a mailbox each (the recorder's tokio-API `mpsc`): actor
//! `inventory` keeps stock counts and actor `pricing` keeps prices. A request carries a
//! `oneshot` sender for its reply. Reserving an order asks `pricing` for the order's price
//! (inventory awaits the reply inside its handler), and quoting a bundle asks `inventory`
//! whether the bundle is in stock (pricing awaits the reply inside its handler). A client
//! asks `pricing` for a quote and, 20 ms later, `inventory` for a reservation: each actor is
//! now inside a handler awaiting the other's reply, and neither reads its mailbox again. The
//! main thread's watchdog sees the client's calls unanswered after 1.5 s, writes the trace and
//! exits.
//!
//! Expected: exactly one `deadlock` error: `inventory` waits for the reply on `price-reply`
//! (at the `// site: await-price` line), whose sender waits unread in `pricing`'s mailbox
//! (sent at the `// site: ask-price` line), and `pricing` waits for the reply on
//! `stock-reply` (at the `// site: await-stock` line), whose sender waits unread in
//! `inventory`'s mailbox (sent at the `// site: ask-stock` line). The client waits behind
//! them, part of the same finding. No other finding.
//!
//! Usage: `oneshot_actors_hang OUT_DIR` writes `OUT_DIR/oneshot_actors_hang.trace`.

use anyhow::{bail, Context, Result};
use hindsight_recorder::channel::{mpsc, oneshot};
use hindsight_recorder::Recorder;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;
use tracing_subscriber::prelude::*;

/// What the inventory actor answers.
enum InventoryRequest {
    /// Reserve `count` of `item` for an order; replies with the order's price.
    Reserve { item: &'static str, count: u32, reply: oneshot::Sender<Option<u64>> },
    /// Whether every item of a bundle is in stock.
    InStock { items: Vec<&'static str>, reply: oneshot::Sender<bool> },
}

/// What the pricing actor answers.
enum PricingRequest {
    /// The price of `count` of `item`.
    PriceOf { item: &'static str, count: u32, reply: oneshot::Sender<u64> },
    /// A quote for a bundle, if it can be sold.
    Quote { items: Vec<&'static str>, reply: oneshot::Sender<Option<u64>> },
}

/// A handle to an actor: its mailbox.
type Mailbox<R> = mpsc::Sender<R>;

fn main() -> Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).context("usage: oneshot_actors_hang OUT_DIR")?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("oneshot_actors_hang.trace");
    let (recorder, guard) =
        Recorder::builder().path(&path).program("oneshot_actors_hang").build()?;
    tracing_subscriber::registry().with(recorder).init();

    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build()?;
    let _context = runtime.enter();
    let (inventory_tx, inventory_rx) = mpsc::channel_named("inventory-mailbox", 16);
    let (pricing_tx, pricing_rx) = mpsc::channel_named("pricing-mailbox", 16);
    hindsight_recorder::task::spawn("inventory", inventory(inventory_rx, pricing_tx.clone()));
    hindsight_recorder::task::spawn("pricing", pricing(pricing_rx, inventory_tx.clone()));
    let client = hindsight_recorder::task::spawn("client", client(inventory_tx, pricing_tx));

    // The watchdog: each call takes a few milliseconds; calls not answered in 1.5 s hang.
    std::thread::sleep(Duration::from_millis(1500));
    if client.is_finished() {
        bail!("the client's calls were answered: the hang did not happen");
    }
    let summary = guard.finish()?;
    println!(
        "oneshot_actors_hang: the actors wait for each other; {} events, {} bytes -> {}",
        summary.events,
        summary.bytes,
        path.display()
    );
    // The actors are stuck for good: leave without shutting the runtime down.
    std::process::exit(0);
}

/// Keeps the stock; reserving asks `pricing` for the price.
async fn inventory(
    mut mailbox: mpsc::Receiver<InventoryRequest>,
    pricing: Mailbox<PricingRequest>,
) {
    let mut stock: HashMap<&'static str, u32> = HashMap::from([("lamp", 5), ("bulb", 40)]);
    while let Some(request) = mailbox.recv().await {
        match request {
            InventoryRequest::Reserve { item, count, reply } => {
                let left = stock.get(item).copied().unwrap_or(0);
                let price = if left >= count {
                    stock.insert(item, left - count);
                    // The bug: awaiting another actor's reply inside the handler.
                    let (tx, rx) = oneshot::channel_named("price-reply");
                    let ask = PricingRequest::PriceOf { item, count, reply: tx };
                    let sent = pricing.send(ask).await; // site: ask-price
                    if sent.is_err() {
                        return;
                    }
                    rx.await.ok() // site: await-price
                } else {
                    None
                };
                let _ = reply.send(price);
            }
            InventoryRequest::InStock { items, reply } => {
                let _ =
                    reply.send(items.iter().all(|item| stock.get(item).is_some_and(|n| *n > 0)));
            }
        }
    }
}

/// Keeps the prices; quoting a bundle asks `inventory` whether it is in stock.
async fn pricing(
    mut mailbox: mpsc::Receiver<PricingRequest>,
    inventory: Mailbox<InventoryRequest>,
) {
    let prices: HashMap<&'static str, u64> = HashMap::from([("lamp", 3_000), ("bulb", 250)]);
    while let Some(request) = mailbox.recv().await {
        match request {
            PricingRequest::PriceOf { item, count, reply } => {
                let _ = reply.send(prices.get(item).copied().unwrap_or(0) * u64::from(count));
            }
            PricingRequest::Quote { items, reply } => {
                // Working out the bundle discount takes a while.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let (tx, rx) = oneshot::channel_named("stock-reply");
                let ask = InventoryRequest::InStock { items: items.clone(), reply: tx };
                let sent = inventory.send(ask).await; // site: ask-stock
                if sent.is_err() {
                    return;
                }
                let in_stock = rx.await.unwrap_or(false); // site: await-stock
                let total: u64 = items.iter().filter_map(|item| prices.get(item)).sum();
                let _ = reply.send(in_stock.then_some(total * 9 / 10));
            }
        }
    }
}

/// Asks for a quote, then reserves an order, and waits for both answers.
async fn client(inventory: Mailbox<InventoryRequest>, pricing: Mailbox<PricingRequest>) {
    let (quote_tx, quote_rx) = oneshot::channel_named("quote-reply");
    let quote = PricingRequest::Quote { items: vec!["lamp", "bulb"], reply: quote_tx };
    if pricing.send(quote).await.is_err() {
        return;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (order_tx, order_rx) = oneshot::channel_named("order-reply");
    let order = InventoryRequest::Reserve { item: "lamp", count: 2, reply: order_tx };
    if inventory.send(order).await.is_err() {
        return;
    }
    let (quote, order) = (quote_rx.await, order_rx.await);
    println!("quote {quote:?}, order {order:?}");
}
