//! Each exchange's list of markets: which unified symbols it lists, and under which native
//! id its candle endpoint knows each one.
//!
//! - Binance `GET /api/v3/exchangeInfo`: `symbols[]` with `symbol`, `baseAsset`,
//!   `quoteAsset` (request weight 20).
//! - Coinbase `GET /products`: `[]` of `id`, `base_currency`, `quote_currency`.
//! - Kraken `GET /0/public/AssetPairs`: `result` keyed by pair name, each with `altname`
//!   (the id `OHLC` is asked with) and `wsname` (`XBT/USD`). Kraken's own codes for two assets
//!   (`XBT` for BTC, `XDG` for DOGE) become the usual ones in unified symbols; pairs without
//!   a `wsname` (dark pools, `….d`) have no candles and are left out.
//!
//! Entries whose assets do not make a valid unified symbol (see [`Symbol::parse`]) are
//! skipped: they could never be asked for.

use std::collections::BTreeMap;

use candlepipe_core::{Exchange, Symbol};
use serde::Deserialize;

use crate::kraken_trades::Decimals;
use crate::FetchError;

/// Unified symbol → native id.
pub type Listing = BTreeMap<Symbol, String>;

/// What fetching a series' candles needs to know of its market.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Market {
    /// The id the exchange's candle endpoint knows it by.
    pub native: String,
    /// How a Kraken pair writes its numbers (its `AssetPairs` entry): with them, candles
    /// older than the 720 its OHLC keeps are built from its trades; without, they are
    /// `history_unavailable`.
    pub decimals: Option<Decimals>,
}

impl Market {
    /// A market known only by its id.
    pub fn named(native: impl Into<String>) -> Market {
        Market {
            native: native.into(),
            decimals: None,
        }
    }
}

/// The path of an exchange's market list.
pub fn path(ex: Exchange) -> &'static str {
    match ex {
        Exchange::Binance => "/api/v3/exchangeInfo",
        Exchange::Coinbase => "/products",
        Exchange::Kraken => "/0/public/AssetPairs",
    }
}

/// The path of an exchange's currency list, kept beside its market list for the gateway
/// (ccxt loads it with the markets): Kraken's `Assets`, Coinbase's `currencies`; Binance's
/// needs an API key, so none.
pub fn currencies_path(ex: Exchange) -> Option<&'static str> {
    match ex {
        Exchange::Binance => None,
        Exchange::Coinbase => Some("/currencies"),
        Exchange::Kraken => Some("/0/public/Assets"),
    }
}

/// What loading the list costs in the exchange's budget, in candle requests: Binance
/// weighs `exchangeInfo` 20 and klines 2.
pub fn cost(ex: Exchange) -> u32 {
    match ex {
        Exchange::Binance => 10,
        Exchange::Coinbase | Exchange::Kraken => 1,
    }
}

/// Kraken's codes for assets whose usual code differs.
fn kraken_asset(code: &str) -> &str {
    match code {
        "XBT" => "BTC",
        "XDG" => "DOGE",
        other => other,
    }
}

fn unified(base: &str, quote: &str) -> Option<Symbol> {
    Symbol::parse(&format!("{base}/{quote}")).ok()
}

fn malformed(ex: Exchange, e: impl std::fmt::Display) -> FetchError {
    FetchError::Malformed(format!("{ex} market list: {e}"))
}

/// Parses a 200 body of [`path`].
pub fn parse(ex: Exchange, body: &[u8]) -> Result<Listing, FetchError> {
    match ex {
        Exchange::Binance => {
            #[derive(Deserialize)]
            struct Info {
                symbols: Vec<Market>,
            }
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Market {
                symbol: String,
                base_asset: String,
                quote_asset: String,
            }
            let info: Info = serde_json::from_slice(body).map_err(|e| malformed(ex, e))?;
            Ok(info
                .symbols
                .into_iter()
                .filter_map(|m| Some((unified(&m.base_asset, &m.quote_asset)?, m.symbol)))
                .collect())
        }
        Exchange::Coinbase => {
            #[derive(Deserialize)]
            struct Product {
                id: String,
                base_currency: String,
                quote_currency: String,
            }
            let products: Vec<Product> =
                serde_json::from_slice(body).map_err(|e| malformed(ex, e))?;
            Ok(products
                .into_iter()
                .filter_map(|p| Some((unified(&p.base_currency, &p.quote_currency)?, p.id)))
                .collect())
        }
        Exchange::Kraken => {
            crate::kraken::check_error(body)?;
            #[derive(Deserialize)]
            struct Body {
                result: BTreeMap<String, Pair>,
            }
            #[derive(Deserialize)]
            struct Pair {
                altname: String,
                #[serde(default)]
                wsname: Option<String>,
            }
            let parsed: Body = serde_json::from_slice(body).map_err(|e| malformed(ex, e))?;
            Ok(parsed
                .result
                .into_values()
                .filter_map(|p| {
                    let (base, quote) = p.wsname.as_deref()?.split_once('/')?;
                    Some((unified(kraken_asset(base), kraken_asset(quote))?, p.altname))
                })
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str) -> Symbol {
        Symbol::parse(s).unwrap()
    }

    #[test]
    fn binance_exchange_info() {
        let body = br#"{"timezone":"UTC","serverTime":1764000000000,"rateLimits":[],"exchangeFilters":[],
            "symbols":[{"symbol":"ETHBTC","status":"TRADING","baseAsset":"ETH","baseAssetPrecision":8,"quoteAsset":"BTC","quotePrecision":8,"orderTypes":["LIMIT"],"filters":[]},
                       {"symbol":"1000SATSUSDT","status":"BREAK","baseAsset":"1000SATS","quoteAsset":"USDT"},
                       {"symbol":"BAD.X","status":"TRADING","baseAsset":"BAD.","quoteAsset":"X"}]}"#;
        let l = parse(Exchange::Binance, body).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[&sym("ETH/BTC")], "ETHBTC");
        assert_eq!(l[&sym("1000SATS/USDT")], "1000SATSUSDT");
    }

    #[test]
    fn coinbase_products() {
        let body = br#"[{"id":"BTC-USD","base_currency":"BTC","quote_currency":"USD","quote_increment":"0.01","status":"online","trading_disabled":false},
                        {"id":"ARPA-USDT","base_currency":"ARPA","quote_currency":"USDT","status":"delisted","trading_disabled":true}]"#;
        let l = parse(Exchange::Coinbase, body).unwrap();
        assert_eq!(l[&sym("BTC/USD")], "BTC-USD");
        assert_eq!(l[&sym("ARPA/USDT")], "ARPA-USDT");
    }

    #[test]
    fn kraken_asset_pairs_name_btc_and_doge_as_usual() {
        let body = br#"{"error":[],"result":{
            "XXBTZUSD":{"altname":"XBTUSD","wsname":"XBT/USD","aclass_base":"currency","base":"XXBT","aclass_quote":"currency","quote":"ZUSD","lot":"unit","pair_decimals":1,"lot_decimals":8,"status":"online"},
            "XETHZUSD":{"altname":"ETHUSD","wsname":"ETH/USD","base":"XETH","quote":"ZUSD","status":"online"},
            "XDGUSD":{"altname":"XDGUSD","wsname":"XDG/USD","base":"XXDG","quote":"ZUSD","status":"online"},
            "SOLEUR":{"altname":"SOLEUR","wsname":"SOL/EUR","base":"SOL","quote":"ZEUR","status":"cancel_only"},
            "XXBTZUSD.d":{"altname":"XBTUSD.d","base":"XXBT","quote":"ZUSD","status":"online"}}}"#;
        let l = parse(Exchange::Kraken, body).unwrap();
        assert_eq!(l.len(), 4);
        assert_eq!(l[&sym("BTC/USD")], "XBTUSD");
        assert_eq!(l[&sym("DOGE/USD")], "XDGUSD");
        assert_eq!(l[&sym("SOL/EUR")], "SOLEUR");
        assert!(matches!(
            parse(
                Exchange::Kraken,
                br#"{"error":["EAPI:Rate limit exceeded"]}"#
            ),
            Err(FetchError::RateLimited { .. })
        ));
        assert!(matches!(
            parse(Exchange::Coinbase, b"<html>"),
            Err(FetchError::Malformed(_))
        ));
    }
}
