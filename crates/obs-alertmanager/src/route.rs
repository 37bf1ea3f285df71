//! The routing tree: which routes an alert matches, with what options, and the route and
//! group keys Alertmanager derives from it (`dispatch/route.go`, `dispatch/dispatch.go`).
//!
//! Matching is depth-first and left to right: a route matches when its matchers do; then its
//! children are tried in order, stopping after the first child that matched unless that child
//! has `continue: true`; a route none of whose children matched is itself the result.
//!
//! Options are inherited from the parent when a route does not set them (the root inherits
//! `group_wait` 30s, `group_interval` 5m, `repeat_interval` 4h, no grouping); time intervals
//! are not inherited, as upstream.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::config::{
    DEFAULT_GROUP_INTERVAL, DEFAULT_GROUP_WAIT, DEFAULT_REPEAT_INTERVAL, GroupBy, RouteConfig,
};
use crate::labels::LabelSet;
use crate::matchers::Matchers;

/// Index of a route in a [`RouteTree`] (pre-order: the root is 0).
pub type RouteId = usize;

/// The effective options of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteOpts {
    /// The receiver notified.
    pub receiver: String,
    /// Labels to group by.
    pub group_by: BTreeSet<String>,
    /// Group by all labels (`...`).
    pub group_by_all: bool,
    /// Wait before a new group's first notification.
    pub group_wait: Duration,
    /// Wait between a group's notifications.
    pub group_interval: Duration,
    /// Wait before repeating an unchanged notification.
    pub repeat_interval: Duration,
    /// Intervals during which the route is muted.
    pub mute_time_intervals: Vec<String>,
    /// Intervals outside which the route is muted (none = always active).
    pub active_time_intervals: Vec<String>,
}

/// One compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Parent route, `None` for the root.
    pub parent: Option<RouteId>,
    /// Children in configuration order.
    pub children: Vec<RouteId>,
    /// Matchers, sorted.
    pub matchers: Matchers,
    /// `continue`.
    pub continue_matching: bool,
    /// Effective options.
    pub opts: RouteOpts,
    /// Upstream's `Route.Key()`: parent keys and this route's matchers joined by `/`
    /// (`{}/{severity="page"}`). Not unique.
    pub key: String,
    /// Upstream's `Route.ID()`: the key with each child's position appended (unique).
    pub id: String,
}

/// The compiled routing tree.
#[derive(Debug, Clone)]
pub struct RouteTree {
    routes: Vec<Route>,
}

impl RouteTree {
    /// Compiles a validated configuration's route tree.
    pub fn new(root: &RouteConfig) -> RouteTree {
        let mut tree = RouteTree { routes: Vec::new() };
        let defaults = RouteOpts {
            receiver: String::new(),
            group_by: BTreeSet::new(),
            group_by_all: false,
            group_wait: DEFAULT_GROUP_WAIT,
            group_interval: DEFAULT_GROUP_INTERVAL,
            repeat_interval: DEFAULT_REPEAT_INTERVAL,
            mute_time_intervals: Vec::new(),
            active_time_intervals: Vec::new(),
        };
        tree.add_route(root, None, &defaults, 0);
        tree
    }

    fn add_route(
        &mut self,
        config: &RouteConfig,
        parent: Option<RouteId>,
        inherited: &RouteOpts,
        position: usize,
    ) -> RouteId {
        let mut opts = inherited.clone();
        if let Some(receiver) = &config.receiver {
            opts.receiver.clone_from(receiver);
        }
        match &config.group_by {
            Some(GroupBy::Labels(names)) => {
                opts.group_by = names.iter().cloned().collect();
                opts.group_by_all = false;
            }
            Some(GroupBy::All) => opts.group_by_all = true,
            None => {}
        }
        if let Some(wait) = config.group_wait {
            opts.group_wait = wait;
        }
        if let Some(interval) = config.group_interval {
            opts.group_interval = interval;
        }
        if let Some(repeat) = config.repeat_interval {
            opts.repeat_interval = repeat;
        }
        opts.mute_time_intervals.clone_from(&config.mute_time_intervals);
        opts.active_time_intervals
            .clone_from(&config.active_time_intervals);

        let matchers_text = config.matchers.to_string();
        let (key, id) = match parent {
            None => (matchers_text.clone(), matchers_text),
            Some(parent_id) => {
                let parent_route = &self.routes[parent_id];
                (
                    format!("{}/{matchers_text}", parent_route.key),
                    format!("{}/{matchers_text}/{position}", parent_route.id),
                )
            }
        };
        let id_index = self.routes.len();
        self.routes.push(Route {
            parent,
            children: Vec::new(),
            matchers: config.matchers.clone(),
            continue_matching: config.continue_matching,
            opts: opts.clone(),
            key,
            id,
        });
        for (child_position, child) in config.routes.iter().enumerate() {
            let child_id = self.add_route(child, Some(id_index), &opts, child_position);
            self.routes[id_index].children.push(child_id);
        }
        id_index
    }

    /// The root route's ID.
    pub fn root(&self) -> RouteId {
        0
    }

    /// A route by ID. Panics on an ID not from this tree.
    pub fn route(&self, id: RouteId) -> &Route {
        &self.routes[id]
    }

    /// All routes in pre-order.
    pub fn routes(&self) -> impl Iterator<Item = (RouteId, &Route)> {
        self.routes.iter().enumerate()
    }

    /// The routes an alert with these labels is dispatched to (upstream's `Route.Match`).
    pub fn match_labels(&self, labels: &LabelSet) -> Vec<RouteId> {
        let mut matched = Vec::new();
        self.match_from(self.root(), labels, &mut matched);
        matched
    }

    fn match_from(&self, id: RouteId, labels: &LabelSet, matched: &mut Vec<RouteId>) -> bool {
        let route = &self.routes[id];
        if !route.matchers.matches(labels) {
            return false;
        }
        let before = matched.len();
        for child in &route.children {
            let child_matched = self.match_from(*child, labels, matched);
            if child_matched && !self.routes[*child].continue_matching {
                break;
            }
        }
        if matched.len() == before {
            matched.push(id);
        }
        true
    }

    /// The labels an alert is grouped by on a route (upstream's `getGroupLabels`).
    pub fn group_labels(&self, id: RouteId, labels: &LabelSet) -> LabelSet {
        let opts = &self.routes[id].opts;
        labels
            .iter()
            .filter(|(name, _)| opts.group_by_all || opts.group_by.contains(*name))
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect()
    }

    /// The group key: `route key` + `:` + group labels as Go prints a label set, e.g.
    /// `{}/{severity="page"}:{alertname="Down", cluster="eu"}`.
    pub fn group_key(&self, id: RouteId, group_labels: &LabelSet) -> String {
        format!("{}:{}", self.routes[id].key, group_labels.go_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const CONFIG: &str = r#"
route:
  receiver: default
  group_by: [alertname]
  routes:
    - matchers: ['severity="page"']
      receiver: pager
      group_by: [alertname, cluster]
      continue: true
      group_wait: 10s
    - match: {team: db}
      receiver: db
      routes:
        - match_re: {service: "mysql|pg"}
          receiver: db-sql
          group_by: ['...']
    - matchers: ['severity=~"page|warn"']
      receiver: warn
receivers:
  - {name: default}
  - {name: pager}
  - {name: db}
  - {name: db-sql}
  - {name: warn}
"#;

    fn tree() -> RouteTree {
        RouteTree::new(&Config::parse(CONFIG).unwrap().route)
    }

    fn receivers(tree: &RouteTree, pairs: &[(&str, &str)]) -> Vec<String> {
        let labels = LabelSet::from_pairs(pairs.iter().copied());
        tree.match_labels(&labels)
            .into_iter()
            .map(|id| tree.route(id).opts.receiver.clone())
            .collect()
    }

    #[test]
    fn depth_first_with_continue() {
        let tree = tree();
        assert_eq!(receivers(&tree, &[("severity", "page")]), ["pager", "warn"]);
        assert_eq!(
            receivers(&tree, &[("severity", "page"), ("team", "db")]),
            ["pager", "db"]
        );
        assert_eq!(receivers(&tree, &[("team", "db"), ("service", "pg")]), ["db-sql"]);
        assert_eq!(receivers(&tree, &[("team", "db"), ("service", "redis")]), ["db"]);
        assert_eq!(receivers(&tree, &[("alertname", "x")]), ["default"]);
    }

    #[test]
    fn options_are_inherited() {
        let tree = tree();
        let pager = tree.route(1);
        assert_eq!(pager.opts.group_wait, Duration::from_secs(10));
        assert_eq!(pager.opts.group_interval, DEFAULT_GROUP_INTERVAL);
        let db_sql = tree.route(3);
        assert!(db_sql.opts.group_by_all);
        assert_eq!(
            tree.route(2).opts.group_by,
            BTreeSet::from(["alertname".to_owned()])
        );
        assert_eq!(db_sql.opts.repeat_interval, DEFAULT_REPEAT_INTERVAL);
    }

    #[test]
    fn keys_and_group_keys_as_upstream_formats_them() {
        let tree = tree();
        assert_eq!(tree.route(0).key, "{}");
        assert_eq!(tree.route(1).key, r#"{}/{severity="page"}"#);
        assert_eq!(tree.route(3).key, r#"{}/{team="db"}/{service=~"^(?:mysql|pg)$"}"#);
        assert_eq!(
            tree.route(3).id,
            r#"{}/{team="db"}/1/{service=~"^(?:mysql|pg)$"}/0"#
        );
        let labels = LabelSet::from_pairs([("alertname", "Down"), ("cluster", "eu"), ("severity", "page")]);
        let group = tree.group_labels(1, &labels);
        assert_eq!(
            tree.group_key(1, &group),
            r#"{}/{severity="page"}:{alertname="Down", cluster="eu"}"#
        );
        let all = tree.group_labels(3, &labels);
        assert_eq!(all, labels);
        assert_eq!(tree.group_key(0, &LabelSet::new()), "{}:{}");
    }
}
